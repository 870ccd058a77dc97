//! Where the soak's per-swap RSS steps go (docs/soak.md, docs/memory.md): load, warm up, run
//! and drop ONNX models many times, the way a module swaps them (a persistent loader thread
//! loads, a persistent infer thread runs and drops), and watch RSS after each cycle.
//!
//!     EDGELENS_MEM_CYCLES=50 cargo test --release --test memory_cycles -- --ignored --nocapture
//!
//! Fails when RSS after the last cycle exceeds RSS after the first cycle of each model by more
//! than `SLACK_MB`: a per-cycle leak of even 1 MB shows after 50 cycles.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use edgelens::engine::{preprocess, Engine, EngineOptions};

const SLACK_MB: f64 = 8.0;
const RUNS_PER_CYCLE: usize = 20;

use edgelens::memory::rss_mb;

fn model(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(name)
}

fn opts() -> EngineOptions {
    EngineOptions {
        backend: Some("ort".into()),
        threads: 1,
    }
}

/// Runs `cycles` swaps over `models` in turn; returns RSS (MB) after each cycle.
fn cycles(models: &[&str], cycles: usize) -> Vec<f64> {
    let (load_tx, load_rx) = mpsc::channel::<PathBuf>();
    let (ready_tx, ready_rx) = mpsc::channel::<Engine>();
    // The module's model-load thread: loads and warms up, like control::model_load.
    let loader = std::thread::Builder::new()
        .name("model-load".into())
        .spawn(move || {
            while let Ok(dir) = load_rx.recv() {
                let engine = Engine::load(&dir, &opts()).expect("model loads");
                engine
                    .infer_only(&preprocess::zero_tensor(engine.input_spec()))
                    .expect("warm-up");
                if ready_tx.send(engine).is_err() {
                    return;
                }
            }
        })
        .expect("spawn loader");
    let (swap_tx, swap_rx) = mpsc::channel::<Engine>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    // The infer thread: serves the new engine and drops the old one, as the pipeline does.
    let infer = std::thread::Builder::new()
        .name("infer".into())
        .spawn(move || {
            let mut serving: Option<Engine> = None;
            while let Ok(engine) = swap_rx.recv() {
                let tensor = preprocess::zero_tensor(engine.input_spec());
                for _ in 0..RUNS_PER_CYCLE {
                    engine.infer_only(&tensor).expect("inference");
                }
                serving = Some(engine);
                let _ = done_tx.send(());
            }
            drop(serving);
        })
        .expect("spawn infer");
    let mut rss = Vec::new();
    for i in 0..cycles {
        load_tx.send(model(models[i % models.len()])).unwrap();
        swap_tx.send(ready_rx.recv().unwrap()).unwrap();
        done_rx.recv().unwrap();
        edgelens::control::release_freed_memory();
        rss.push(rss_mb());
    }
    drop((load_tx, swap_tx));
    loader.join().unwrap();
    infer.join().unwrap();
    rss
}

fn n_cycles() -> usize {
    std::env::var("EDGELENS_MEM_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// Prints the series; returns the growth after every model was served once, in MB.
fn growth(label: &str, models: &[&str], rss: &[f64]) -> f64 {
    let k = models.len();
    // Baseline: RSS once every model has been served once.
    let base = rss[k - 1];
    let last = *rss.last().unwrap();
    let per_cycle = (last - base) / (rss.len() - k).max(1) as f64;
    println!(
        "{label}: {} cycles over {models:?}: first {:.1} MB, after all models once {base:.1} MB, \
         last {last:.1} MB, {per_cycle:+.2} MB/cycle; all: {:?}",
        rss.len(),
        rss[0],
        rss.iter().map(|r| r.round() as i64).collect::<Vec<_>>()
    );
    last - base
}

#[test]
#[ignore = "slow (minutes); run for memory work: see the file's header"]
fn model_swaps_do_not_grow_rss() {
    // As main() does; EDGELENS_MEM_UNTUNED=1 shows the growth without it.
    if std::env::var_os("EDGELENS_MEM_UNTUNED").is_none() {
        edgelens::memory::tune_allocator();
    }
    let n = n_cycles();
    let one = ["ssdlite-person"];
    let same = growth("same model", &one, &cycles(&one, n));
    let two = ["ssdlite-person", "ssd-mobilenetv2-oidv4"];
    let alt = growth("two models", &two, &cycles(&two, n));
    for (label, g) in [("same model", same), ("two models", alt)] {
        assert!(g <= SLACK_MB, "{label}: RSS grew {g:.1} MB over {n} cycles");
    }
}
