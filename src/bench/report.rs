//! The bench report: what is measured per backend, and the table printed from it.

use hdrhistogram::Histogram;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

#[derive(Debug, Serialize)]
pub struct BackendResult {
    pub backend: String,
    pub threads: usize,
    /// Engine instances in the pipeline (the ceiling runs one).
    #[serde(default)]
    pub instances: usize,
    pub load_ms: f64,
    pub decode_fps: f64,
    pub ceiling_fps: f64,
    /// Per-call times of the bare backend on one ready tensor.
    pub ceiling_ms: Percentiles,
    pub pipeline_fps: f64,
    pub pipeline_over_ceiling: f64,
    /// Pipeline start to the first inferred frame (GStreamer preroll, first decode).
    pub startup_ms: f64,
    /// First inferred frame to the layout settled (auto-tuning trials and loads; the
    /// pipeline fps is measured after it, on `frames` frames).
    #[serde(default)]
    pub tuning_ms: f64,
    pub frames: u64,
    pub dropped: u64,
    pub preprocess_ms: Percentiles,
    pub infer_ms: Percentiles,
    pub decode_nms_ms: Percentiles,
    pub frame_to_sink_ms: Percentiles,
    pub cpu_s_per_frame: f64,
    pub peak_rss_mb: f64,
    /// The model this row measured (several per run with `--model A --model B`).
    pub model: String,
    /// The machine limit (bench/limit.rs, docs/benchmarks.md) and the pipeline's share of it.
    pub limit: super::limit::Limit,
    pub pipeline_over_limit: f64,
    /// The pipeline over the limit with every core's inference timed at once.
    #[serde(default)]
    pub pipeline_over_limit_all_cores: f64,
    /// The steady window's CPU per frame by what the threads do (bench/cpu.rs).
    #[serde(default)]
    pub cpu_ms: super::cpu::CpuSplit,
    /// The tracking stage (tracker + zones, lines, events) per frame, in the pipeline run.
    pub track_ms: Percentiles,
    /// `--scene-ab`: the same pipeline without the tracking stage, run right after, and its
    /// pipeline/ceiling ratio; the stage's cost is the difference of the two ratios.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_scene: Option<SceneAb>,
}

#[derive(Debug, Serialize)]
pub struct SceneAb {
    /// Without the stage: FPS in the interleaved A/B rounds, and the pipeline/ceiling ratio
    /// the main run would have had without it (its ratio scaled by the A/B change).
    pub pipeline_fps: f64,
    pub pipeline_over_ceiling: f64,
    /// (FPS with the stage - FPS without) / FPS without over the A/B rounds, in percent:
    /// the change of the pipeline/ceiling ratio (same ceiling). Noisy on a shared box.
    pub ratio_change_pct: f64,
    /// The stage's mean time per frame × pipeline FPS: its share of the frame time, in percent
    /// (what it can take off the ratio at most, as it runs on the inference thread).
    pub stage_share_pct: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub model_version: String,
    pub video: String,
    pub frames: u64,
    pub host: String,
    pub cores: usize,
    pub results: Vec<BackendResult>,
    /// `bench --start`: cold start and RSS of a real `edgelens run` (start.rs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<super::start::StartSection>,
}

/// A histogram of microseconds, up to 10 minutes.
pub(super) fn us_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds")
}

/// p50/p95/p99 of a microsecond histogram, in milliseconds with two decimals.
pub(super) fn pct(h: &Histogram<u64>) -> Percentiles {
    let q = |q: f64| {
        if h.is_empty() {
            0.0
        } else {
            (h.value_at_quantile(q) as f64 / 10.0).round() / 100.0
        }
    };
    Percentiles {
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
    }
}

pub(super) fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The report as a fixed-width table, one row per model, backend and thread count.
pub fn table(r: &Report) -> String {
    let mut out = format!(
        "model {} v{} | video {} | {} frames | {} cores {}\n",
        r.model, r.model_version, r.video, r.frames, r.cores, r.host
    );
    let width = r.results.iter().map(|b| b.model.len()).fold(5, usize::max);
    out += &format!(
        "{:<width$} {:>7} {:>7} {:<10} {:>3} {:>9} {:>9} {:>8} {:>9} {:>6} {:>8} {:>7} {:>17} {:>17} {:>17} {:>20} {:>8} {:>8}\n",
        "model",
        "limit",
        "p/limit",
        "backend",
        "thr",
        "decode",
        "ceiling",
        "ceil p50",
        "pipeline",
        "ratio",
        "start ms",
        "tune ms",
        "pre p50/95/99",
        "infer p50/95/99",
        "dec+nms p50/95/99",
        "frame>sink p50/95/99",
        "cpu s/f",
        "rss MB"
    );
    let p = |p: &Percentiles| format!("{:.2}/{:.2}/{:.2}", p.p50, p.p95, p.p99);
    for b in &r.results {
        out += &format!(
            "{:<width$} {:>7.1} {:>7.3} {:<10} {:>3} {:>9.1} {:>9.1} {:>8.2} {:>9.1} {:>6.3} {:>8.0} {:>7.0} {:>17} {:>17} {:>17} {:>20} {:>8.4} {:>8.1}\n",
            b.model,
            b.limit.fps,
            b.pipeline_over_limit,
            b.backend,
            b.threads,
            b.decode_fps,
            b.ceiling_fps,
            b.ceiling_ms.p50,
            b.pipeline_fps,
            b.pipeline_over_ceiling,
            b.startup_ms,
            b.tuning_ms,
            p(&b.preprocess_ms),
            p(&b.infer_ms),
            p(&b.decode_nms_ms),
            p(&b.frame_to_sink_ms),
            b.cpu_s_per_frame,
            b.peak_rss_mb
        );
    }
    out += "limit = cores / (1-thread inference + decode CPU + preprocess, per frame); p/limit = pipeline / limit\n";
    for b in &r.results {
        out += &where_the_time_goes(b);
    }
    for b in &r.results {
        out += &format!(
            "{:<10} track (tracker+scene) p50/95/99 {} ms per frame",
            b.backend,
            p(&b.track_ms)
        );
        if let Some(ab) = &b.no_scene {
            out += &format!(
                " | ratio with {:.3}, without {:.3} ({:+.2}% in A/B rounds); stage = {:.2}% of frame time",
                b.pipeline_over_ceiling,
                ab.pipeline_over_ceiling,
                ab.ratio_change_pct,
                ab.stage_share_pct
            );
        }
        out += "\n";
    }
    out
}

/// The pipeline's CPU per frame beside what the limit allows, part by part.
fn where_the_time_goes(b: &BackendResult) -> String {
    let (l, c) = (&b.limit, &b.cpu_ms);
    if c.total_ms <= 0.0 || l.fps <= 0.0 {
        return String::new();
    }
    let mut out = format!(
        "{:<10} cpu ms/frame, steady: {:.2} in all vs the limit's {:.2} | inference {:.2} (alone {:.2} + preprocess {:.2}",
        b.backend,
        c.total_ms,
        l.cpu_ms_per_frame(),
        c.inference_ms,
        l.infer_1thread_ms,
        l.preprocess_ms,
    );
    if l.fps_all_cores > 0.0 {
        out += &format!("; all cores at once {:.2}", l.infer_all_cores_ms);
    }
    out += &format!(
        ") | decode {:.2} (alone {:.2}) | edgelens {:.2}\n",
        c.decode_ms, l.decode_cpu_ms, c.edgelens_ms
    );
    if l.fps_all_cores > 0.0 {
        out += &format!(
            "{:<10} limit with all cores inferring at once {:.1} fps; pipeline / that limit {:.3}\n",
            b.backend, l.fps_all_cores, b.pipeline_over_limit_all_cores
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_milliseconds_from_microseconds() {
        let mut h = us_hist();
        for us in 1..=1000u64 {
            h.record(us * 10).expect("in bounds");
        }
        let p = pct(&h);
        assert!((p.p50 - 5.0).abs() < 0.05, "{p:?}");
        assert!((p.p99 - 9.9).abs() < 0.05, "{p:?}");
        assert_eq!(pct(&us_hist()).p50, 0.0);
    }
}
