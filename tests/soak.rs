//! `make soak` (not in CI): the module for EDGELENS_SOAK_MINUTES (default 30) at 10 fps,
//! with faults every few minutes: broker killed and restarted, the source switched to an
//! RTSP camera that is killed and restarted, a model swap each way, a burst of bad
//! patches. RSS and open fds are sampled every 10 s; their slope after warm-up is reported
//! (bench-out/soak.json). Messages lost must be 0 within the queue bound.

mod common;

use std::time::{Duration, Instant};

use common::edgehub::*;
use serde_json::{json, Value};

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64)
}

/// Least-squares slope of y over x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

enum Fault {
    BrokerRestart,
    RtspRoundTrip,
    SwapModel,
    SwapBack,
    BadPatches,
}

fn inject(h: &mut Harness, fault: &Fault, rtsp_port: u16) -> &'static str {
    match fault {
        Fault::BrokerRestart => {
            h.broker.stop();
            std::thread::sleep(Duration::from_secs(5));
            h.broker.restart();
            "broker killed for 5 s"
        }
        Fault::RtspRoundTrip => {
            let server = common::start_rtsp(rtsp_port);
            let uri = format!("rtsp://127.0.0.1:{rtsp_port}/test");
            h.hub.patch_desired(json!({"source": {"uri": uri}}));
            std::thread::sleep(Duration::from_secs(10));
            drop(server);
            std::thread::sleep(Duration::from_secs(5));
            let server = common::start_rtsp(rtsp_port);
            std::thread::sleep(Duration::from_secs(10));
            h.hub.patch_desired(json!({"source": {"uri": null}}));
            drop(server);
            "source -> RTSP, camera killed 5 s, back to the file"
        }
        Fault::SwapModel => {
            h.hub
                .patch_desired(json!({"model": {"name": "ssd-mobilenetv2-oidv4"}}));
            "model swap to oidv4"
        }
        Fault::SwapBack => {
            h.hub
                .patch_desired(json!({"model": {"name": "ssdlite-person"}}));
            "model swap back"
        }
        Fault::BadPatches => {
            for bad in [
                json!({"model": {"threads": 0}}),
                json!({"source": {"uri": "nope://x", "params": {"latency_ms": "x\" ! filesink"}}}),
                json!({"detection": {"minConfidence": "high"}}),
                json!({"output": {"name": "../../x"}}),
            ] {
                h.hub.patch_desired(bad.clone());
                // Undo it in the simulator's document too, as an operator would.
                let undo = match bad.as_object().and_then(|o| o.keys().next()) {
                    Some(k) => json!({ k.as_str(): null }),
                    None => json!({}),
                };
                h.hub.patch_desired(undo);
            }
            h.hub.patch_raw(b"{not json");
            "8 bad patches and 1 malformed"
        }
    }
}

#[test]
#[ignore = "30 minutes: run with `make soak`"]
fn soak() {
    let minutes: u64 = std::env::var("EDGELENS_SOAK_MINUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let total = Duration::from_secs(minutes * 60);
    let fault_every = (total / 12).max(Duration::from_secs(60));
    let desired = json!({"model": {"name": "ssdlite-person", "backend": "ort"}});
    let mut h = Harness::start(desired, &[], &["--queue", "100000"]);
    h.wait_ready(3);
    let pid = h.module.child.0.id();
    let rtsp_port = common::free_port();
    let faults = [
        Fault::BrokerRestart,
        Fault::SwapModel,
        Fault::RtspRoundTrip,
        Fault::SwapBack,
        Fault::BadPatches,
    ];
    let started = Instant::now();
    let (mut samples, mut log) = (Vec::<Value>::new(), Vec::<String>::new());
    let (mut next_sample, mut next_fault, mut i) = (started, started + fault_every, 0);
    while started.elapsed() < total {
        if Instant::now() >= next_sample {
            let t = started.elapsed().as_secs();
            // The layout the tuner chose: 2x1 holds one more ORT session than 1x2, so RSS is
            // comparable only between samples of the same model and layout.
            let r = h.hub.reported();
            let l = &r["model"]["layout"];
            let name = r["model"]["name"].as_str().unwrap_or("-");
            let layout = format!("{name} {}x{}", l["instances"], l["threads"]);
            samples.push(json!({"t": t, "rssKb": rss_kb(pid), "fds": fds(pid), "layout": layout}));
            next_sample += Duration::from_secs(10);
        }
        if Instant::now() >= next_fault {
            let what = inject(&mut h, &faults[i % faults.len()], rtsp_port);
            log.push(format!("{} s: {what}", started.elapsed().as_secs()));
            eprintln!("soak: {}", log.last().expect("entry"));
            i += 1;
            next_fault += fault_every;
        }
        assert!(
            h.module.child.0.try_wait().expect("poll").is_none(),
            "the module died:\n{}",
            h.module.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Settle: let the outbox drain, then compare what was made with what arrived.
    std::thread::sleep(Duration::from_secs(15));
    let (_, stats) = h
        .hub
        .call_method("getStats", json!({}), Duration::from_secs(10))
        .expect("getStats");
    let made = stats["messages"].as_u64().unwrap_or(0);
    let dropped = stats["outboxDropped"].as_u64().unwrap_or(0);
    let received = h.hub.telemetry_count() as u64;
    let warm = 300.0;
    let series = |key: &str| -> Vec<(f64, f64)> {
        samples
            .iter()
            .filter(|s| s["t"].as_f64().unwrap_or(0.0) >= warm)
            .map(|s| {
                (
                    s["t"].as_f64().unwrap_or(0.0),
                    s[key].as_f64().unwrap_or(0.0),
                )
            })
            .collect()
    };
    let at = |secs: u64, key: &str| {
        samples
            .iter()
            .find(|s| s["t"].as_u64().unwrap_or(0) >= secs)
            .map(|s| s[key].clone())
            .unwrap_or(Value::Null)
    };
    let report = json!({
        "minutes": minutes,
        "faults": log,
        "rssKbAt5min": at(300, "rssKb"), "rssKbAtEnd": samples.last().map(|s| s["rssKb"].clone()),
        "fdsAt5min": at(300, "fds"), "fdsAtEnd": samples.last().map(|s| s["fds"].clone()),
        "rssKbPerHourAfterWarmup": slope(&series("rssKb")) * 3600.0,
        "fdsPerHourAfterWarmup": slope(&series("fds")) * 3600.0,
        "messagesMade": made, "messagesReceived": received, "outboxDropped": dropped,
        "samples": samples,
    });
    std::fs::create_dir_all(common::root().join("bench-out")).ok();
    std::fs::write(
        common::root().join("bench-out/soak.json"),
        serde_json::to_string_pretty(&report).expect("json"),
    )
    .expect("write soak.json");
    eprintln!(
        "soak: {minutes} min, {} faults; RSS {} -> {} kB ({:.0} kB/h after warm-up); fds {} -> {} ({:.1}/h); messages made {made}, received {received}, dropped {dropped}",
        log.len(),
        report["rssKbAt5min"], report["rssKbAtEnd"], report["rssKbPerHourAfterWarmup"],
        report["fdsAt5min"], report["fdsAtEnd"], report["fdsPerHourAfterWarmup"]
    );
    assert_eq!(dropped, 0, "the outbox dropped messages within its bound");
    assert!(received >= made, "lost {} messages", made - received);
}
