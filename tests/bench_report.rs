//! `edgelens bench` with several models and thread counts (rows, the machine limit, --html), and
//! the docs/benchmarks.md renderer of `make bench-report` (scripts/bench_render.py, real python3)
//! on the JSON that run wrote.

mod common;

use std::path::Path;
use std::process::Command;

use common::{bin, root, run};
use serde_json::{json, Value};

fn bench_two_models(dir: &Path) -> Value {
    let out = run(bin().current_dir(root()).args([
        "bench",
        "--model",
        "models/ssdlite-person",
        "--model",
        "models/ssdlite-person-int8",
        "--backend",
        "ort",
        "--threads",
        "1,2",
        "--frames",
        "10",
        "--quiet",
        "--html",
        "--out",
        dir.to_str().expect("utf-8 path"),
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("p/limit"), "table: {stdout}");
    assert!(stderr.contains("bench.html"), "{stderr}");
    serde_json::from_slice(&std::fs::read(dir.join("bench.json")).expect("bench.json"))
        .expect("bench.json is JSON")
}

fn render(report: &Value, dir: &Path) -> String {
    let json_path = dir.join("report.json");
    std::fs::write(&json_path, serde_json::to_vec(report).unwrap()).unwrap();
    let doc = dir.join("benchmarks.md");
    if !doc.exists() {
        let hand_written = "# Benchmarks\n\nhand-written intro\n\n## Earlier runs\n\nkept\n";
        std::fs::write(&doc, hand_written).unwrap();
    }
    let out = Command::new("python3")
        .current_dir(root())
        .arg("scripts/bench_render.py")
        .arg(&json_path)
        .arg("--doc")
        .arg(&doc)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "renderer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&doc).unwrap()
}

#[test]
fn bench_rows_limit_html_and_the_rendered_report() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bench = bench_two_models(&tmp.path().join("bench"));

    // One row per model x thread count, in order, each with a limit and its ratio.
    let rows = bench["results"].as_array().expect("results");
    let got: Vec<(String, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["model"].as_str().unwrap().to_string(),
                r["threads"].as_u64().unwrap(),
            )
        })
        .collect();
    let want = [
        ("ssdlite-person", 1),
        ("ssdlite-person", 2),
        ("ssdlite-person-int8", 1),
        ("ssdlite-person-int8", 2),
    ];
    assert_eq!(
        got,
        want.map(|(m, t)| (m.to_string(), t)).to_vec(),
        "{bench:#}"
    );
    let cores = std::thread::available_parallelism().unwrap().get() as u64;
    for r in rows {
        let l = &r["limit"];
        assert_eq!(l["cores"].as_u64(), Some(cores));
        let per_frame = l["infer_1thread_ms"].as_f64().unwrap()
            + l["decode_cpu_ms"].as_f64().unwrap()
            + l["preprocess_ms"].as_f64().unwrap();
        assert!(
            l["infer_1thread_ms"].as_f64().unwrap() > 0.0
                && l["decode_cpu_ms"].as_f64().unwrap() > 0.0,
            "{r:#}"
        );
        let fps = l["fps"].as_f64().unwrap();
        assert!(
            (fps - cores as f64 * 1e3 / per_frame).abs() < 0.2,
            "limit is cores/(infer+decode+pre): {r:#}"
        );
        let ratio = r["pipeline_over_limit"].as_f64().unwrap();
        let want = r["pipeline_fps"].as_f64().unwrap() / fps;
        assert!((ratio - want).abs() < 0.002, "{r:#}");
        // Where the CPU went: the workers' threads were seen running, the parts add up, and
        // the all-cores limit is the same sum with the concurrent inference time.
        let c = &r["cpu_ms"];
        let part = |k: &str| c[k].as_f64().unwrap();
        // CPU time comes in 10 ms clock ticks per thread: only the slowest row (fp32, one
        // thread, ~100 ms of inference over 10 frames) is sure to have whole ticks.
        if r["model"] == "ssdlite-person" && r["threads"] == 1 {
            assert!(part("inference_ms") > 0.0, "{r:#}");
        }
        let sum = part("inference_ms") + part("decode_ms") + part("edgelens_ms");
        assert!((part("total_ms") - sum).abs() < 0.01, "{r:#}");
        let all = l["infer_all_cores_ms"].as_f64().unwrap();
        let all_fps = l["fps_all_cores"].as_f64().unwrap();
        assert!(all > 0.0, "{r:#}");
        let want = cores as f64 * 1e3 / (per_frame - l["infer_1thread_ms"].as_f64().unwrap() + all);
        assert!((all_fps - want).abs() < 0.2, "{r:#}");
    }

    // bench.html: beside bench.json, the chart inline, nothing from outside.
    let html = std::fs::read_to_string(tmp.path().join("bench/bench.html")).expect("bench.html");
    assert!(html.contains("src=\"data:image/png;base64,iVBORw0KGgo"));
    assert!(!html.contains("http:") && !html.contains("https:") && !html.contains("<script"));
    assert_eq!(
        html.matches("<td class=\"l\">ssdlite-person-int8</td>")
            .count(),
        2 + 2 + 2
    );

    // The renderer: tables from the JSON, hand-written parts kept, hooks only when present.
    let python: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({"model": r["model"], "threads": r["threads"], "fps": 20.0, "frames": 10,
                   "decode_ms": 3.0, "preprocess_ms": 1.5, "infer_ms": 20.0,
                   "onnxruntime": "1.32.0", "opencv": "5.0.0"})
        })
        .collect();
    let mut report = json!({"generated": "now", "commit": "abc", "bench": bench, "python": python,
                            "machine": {"loadavg_before": 1.5, "loadavg_after": 2.5}});
    let doc = render(&report, tmp.path());
    assert!(
        doc.starts_with("# Benchmarks\n\n<!-- bench-report:begin"),
        "{doc}"
    );
    assert!(doc.contains("hand-written intro") && doc.contains("## Earlier runs\n\nkept"));
    assert!(doc.contains("### fp32 vs int8"));
    assert!(doc.contains("### Where the CPU goes"), "{doc}");
    assert!(doc.contains("| pipeline / limit |"));
    let pipeline = rows[0]["pipeline_fps"].as_f64().unwrap();
    assert!(
        doc.contains(&format!("**{:.2}**", pipeline / 20.0)),
        "edgelens / Python: {doc}"
    );
    for skipped in ["### Layouts", "### Streams", "### Start"] {
        assert!(!doc.contains(skipped), "{skipped} without data: {doc}");
    }

    // With hook data (and a second render over the first): the sections appear, once.
    report["layouts"] = json!([{"instances": 2, "threads": 1, "fps": 210.5},
                               {"instances": 1, "threads": 2, "fps": 190.0}]);
    report["streams"] = json!({"rows": [{"streams": 4, "fps": 200.0, "rss_mb": 150.0}],
                               "note": "four sources"});
    report["start"] = json!({"cold_start_ms": 850, "peak_rss_mb": 120.5});
    let doc = render(&report, tmp.path());
    // (serde_json sorts object keys: the columns come out in name order.)
    assert!(
        doc.contains("| fps | instances | threads |\n|---|---|---|\n| 210.5 | 2 | 1 |"),
        "{doc}"
    );
    assert!(
        doc.contains("| 200.0 | 150.0 | 4 |\n\nfour sources"),
        "{doc}"
    );
    assert!(doc.contains("| cold_start_ms | 850 |"));
    assert_eq!(doc.matches("<!-- bench-report:begin").count(), 1);
}

#[test]
fn thread_counts_are_numbers_or_all() {
    let out = run(bin().args(["bench", "--quiet", "--threads", "1,0"]));
    common::assert_clean_failure(
        &out,
        &["\"0\": give `auto`, `all`, or a thread count in 1..="],
    );
    let out = run(bin().args(["bench", "--quiet", "--threads", "many"]));
    common::assert_clean_failure(&out, &["\"many\""]);
}
