//! Counters and latency histograms for one running pipeline, exported to Prometheus and the twin.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntGauge, IntGaugeVec, Opts, Registry,
};
use serde::Serialize;

use crate::engine::layout::LayoutReport;
use crate::ingest::IngestStats;

/// Per-stage latency histograms in microseconds.
pub struct StageHistograms {
    pub preprocess: Histogram<u64>,
    pub infer: Histogram<u64>,
    pub decode: Histogram<u64>,
    /// Tracker, scene and snapshots per frame.
    pub track: Histogram<u64>,
    pub latency: Histogram<u64>,
}

impl StageHistograms {
    fn new() -> StageHistograms {
        let h = || {
            Histogram::new_with_bounds(1, 600_000_000, 3)
                .unwrap_or_else(|_| Histogram::new(3).expect("3 significant digits is valid"))
        };
        StageHistograms {
            preprocess: h(),
            infer: h(),
            decode: h(),
            track: h(),
            latency: h(),
        }
    }
}

pub struct Stats {
    pub ingest: Arc<IngestStats>,
    pub frames_inferred: AtomicU64,
    pub frames_skipped: AtomicU64,
    pub infer_errors: AtomicU64,
    /// Frames whose result came back after the reorder window had moved past them.
    pub frames_late: AtomicU64,
    /// The engine layout serving now and how it was chosen (`model.layout`).
    pub layout: Mutex<Option<LayoutReport>>,
    pub messages_out: AtomicU64,
    pub histograms: Mutex<StageHistograms>,
    /// Snapshot writer and uploader status, when snapshots are on (set per pipeline start).
    snapshots: Mutex<Option<Arc<super::snapshot_stage::SnapshotStatusCell>>>,
    /// Each running source's own counters, by name (totals above include them).
    pub sources: super::sources::SourceStatsMap,
    started: Instant,
    recent: RecentRate,
    registry: Registry,
    prom_infer: HistogramVec,
    prom_model: IntGaugeVec,
    prom_published: IntCounter,
    prom_failed: IntCounter,
    prom_dropped_msgs: IntGauge,
}

impl Stats {
    /// Forgets a source that was removed for good (not one that restarts): it leaves
    /// reported stats and /metrics. The totals keep what it counted.
    pub fn remove_source(&self, name: &str) {
        lock(&self.sources).remove(name);
    }

    pub fn set_layout(&self, report: LayoutReport) {
        *lock(&self.layout) = Some(report);
    }

    pub fn layout(&self) -> Option<LayoutReport> {
        lock(&self.layout).clone()
    }
}

/// The stats object reported to the twin and returned by `getStats`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatsSnapshot {
    pub fps: f64,
    pub frames_in: u64,
    pub frames_inferred: u64,
    pub dropped: u64,
    pub skipped: u64,
    pub infer_errors: u64,
    pub late: u64,
    pub messages: u64,
    pub source_restarts: u64,
    pub inference_ms_p50: f64,
    pub inference_ms_p95: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    pub uptime_s: u64,
    /// Snapshots written/dropped and uploads pending/uploaded/failed; absent when off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<super::snapshot_stage::SnapshotStatus>,
    /// Per source, by name.
    pub sources: std::collections::BTreeMap<String, super::sources::SourceSnapshot>,
}

/// Frames per second over the last 5 s: the pipeline's and each source's rate.
#[derive(Debug, Default)]
pub(crate) struct RecentRate(Mutex<std::collections::VecDeque<Instant>>);

impl RecentRate {
    const WINDOW: Duration = Duration::from_secs(5);

    pub fn record(&self) {
        let now = Instant::now();
        let mut r = lock(&self.0);
        r.push_back(now);
        while r
            .front()
            .is_some_and(|t| now.duration_since(*t) > Self::WINDOW)
        {
            r.pop_front();
        }
    }

    pub fn fps(&self) -> f64 {
        let r = lock(&self.0);
        match (r.front(), r.back()) {
            (Some(a), Some(b)) if r.len() > 1 => {
                let span = b.duration_since(*a).as_secs_f64();
                if span > 0.0 {
                    (r.len() - 1) as f64 / span
                } else {
                    0.0
                }
            }
            _ => 0.0,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Stats {
    pub fn new(ingest: Arc<IngestStats>) -> Arc<Stats> {
        let registry = Registry::new();
        let prom_infer = HistogramVec::new(
            HistogramOpts::new(
                "edgelens_inference_seconds",
                "Backend inference time per frame",
            )
            .buckets(vec![
                0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28,
            ]),
            &["model", "backend"],
        )
        .expect("static metric definition");
        let prom_model = IntGaugeVec::new(
            Opts::new("edgelens_model_info", "The model serving now (value 1)"),
            &["model", "version", "backend"],
        )
        .expect("static metric definition");
        let prom_published = IntCounter::new(
            "edgelens_messages_published_total",
            "Messages handed to the sink",
        )
        .expect("static");
        let prom_failed = IntCounter::new(
            "edgelens_messages_failed_total",
            "Messages the sink rejected",
        )
        .expect("static");
        let prom_dropped_msgs = IntGauge::new(
            "edgelens_messages_dropped",
            "Messages dropped by a full outbox",
        )
        .expect("static");
        for c in [
            Box::new(prom_infer.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(prom_model.clone()),
            Box::new(prom_published.clone()),
            Box::new(prom_failed.clone()),
            Box::new(prom_dropped_msgs.clone()),
        ] {
            let _ = registry.register(c);
        }
        Arc::new(Stats {
            ingest,
            frames_inferred: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            infer_errors: AtomicU64::new(0),
            frames_late: AtomicU64::new(0),
            layout: Mutex::new(None),
            messages_out: AtomicU64::new(0),
            histograms: Mutex::new(StageHistograms::new()),
            snapshots: Mutex::new(None),
            sources: Default::default(),
            started: Instant::now(),
            recent: RecentRate::default(),
            registry,
            prom_infer,
            prom_model,
            prom_published,
            prom_failed,
            prom_dropped_msgs,
        })
    }

    /// Time the tracking stage (tracker, scene, snapshots) took on one frame.
    pub fn record_track(&self, d: Duration) {
        let _ = lock(&self.histograms)
            .track
            .record((d.as_micros() as u64).max(1));
    }

    pub fn record_inference(&self, model: &str, backend: &str, times: &crate::engine::StageTimes) {
        self.frames_inferred.fetch_add(1, Ordering::Relaxed);
        self.prom_infer
            .with_label_values(&[model, backend])
            .observe(times.infer.as_secs_f64());
        {
            let mut h = lock(&self.histograms);
            let us = |d: Duration| (d.as_micros() as u64).max(1);
            let _ = h.preprocess.record(us(times.preprocess));
            let _ = h.infer.record(us(times.infer));
            let _ = h.decode.record(us(times.decode));
        }
        self.recent.record();
    }

    pub fn record_delivery(&self, latency: Duration, ok: bool) {
        if ok {
            self.messages_out.fetch_add(1, Ordering::Relaxed);
            self.prom_published.inc();
        } else {
            self.prom_failed.inc();
        }
        let _ = lock(&self.histograms)
            .latency
            .record((latency.as_micros() as u64).max(1));
    }

    pub fn set_model(&self, model: &str, version: &str, backend: &str) {
        self.prom_model.reset();
        self.prom_model
            .with_label_values(&[model, version, backend])
            .set(1);
    }

    pub fn set_outbox_dropped(&self, n: u64) {
        self.prom_dropped_msgs.set(n as i64);
    }

    pub fn fps(&self) -> f64 {
        self.recent.fps()
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let h = lock(&self.histograms);
        let ms = |h: &Histogram<u64>, q: f64| {
            if h.is_empty() {
                0.0
            } else {
                (h.value_at_quantile(q) as f64 / 1000.0 * 100.0).round() / 100.0
            }
        };
        StatsSnapshot {
            fps: (self.fps() * 100.0).round() / 100.0,
            frames_in: self.ingest.frames_in.load(Ordering::Relaxed),
            frames_inferred: self.frames_inferred.load(Ordering::Relaxed),
            dropped: self.ingest.frames_dropped.load(Ordering::Relaxed),
            skipped: self.frames_skipped.load(Ordering::Relaxed),
            infer_errors: self.infer_errors.load(Ordering::Relaxed),
            late: self.frames_late.load(Ordering::Relaxed),
            messages: self.messages_out.load(Ordering::Relaxed),
            source_restarts: self.ingest.restarts.load(Ordering::Relaxed),
            inference_ms_p50: ms(&h.infer, 0.5),
            inference_ms_p95: ms(&h.infer, 0.95),
            latency_ms_p50: ms(&h.latency, 0.5),
            latency_ms_p95: ms(&h.latency, 0.95),
            uptime_s: self.started.elapsed().as_secs(),
            snapshots: lock(&self.snapshots).as_ref().map(|c| c.get()),
            sources: lock(&self.sources)
                .iter()
                .map(|(n, s)| (n.clone(), s.snapshot()))
                .collect(),
        }
    }

    /// The snapshot status to report from now on (a new pipeline brings a new one).
    pub fn set_snapshots(&self, cell: Arc<super::snapshot_stage::SnapshotStatusCell>) {
        *lock(&self.snapshots) = Some(cell);
    }

    /// Prometheus text exposition: our registry plus frame counters read live.
    pub fn prometheus_text(&self) -> String {
        let mut families = self.registry.gather();
        let counter = |name: &str, help: &str, v: u64| {
            let c = IntCounter::new(name, help).expect("static");
            c.inc_by(v);
            prometheus::core::Collector::collect(&c)
        };
        families.extend(counter(
            "edgelens_frames_in_total",
            "Frames received from the source",
            self.ingest.frames_in.load(Ordering::Relaxed),
        ));
        families.extend(counter(
            "edgelens_frames_dropped_total",
            "Frames dropped because inference was busy (newest wins)",
            self.ingest.frames_dropped.load(Ordering::Relaxed),
        ));
        families.extend(counter(
            "edgelens_frames_inferred_total",
            "Frames run through the model",
            self.frames_inferred.load(Ordering::Relaxed),
        ));
        families.extend(counter(
            "edgelens_frames_skipped_total",
            "Frames skipped by maxFps",
            self.frames_skipped.load(Ordering::Relaxed),
        ));
        families.extend(counter(
            "edgelens_frames_late_total",
            "Frames whose result came back after the reorder window moved past them",
            self.frames_late.load(Ordering::Relaxed),
        ));
        families.extend(counter(
            "edgelens_source_restarts_total",
            "Times the source pipeline was rebuilt",
            self.ingest.restarts.load(Ordering::Relaxed),
        ));
        let mut buf = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&families, &mut buf);
        let mut text = String::from_utf8_lossy(&buf).to_string();
        text.push_str(&super::sources::prometheus_text(&lock(&self.sources)));
        text
    }
}
