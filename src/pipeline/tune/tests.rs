//! `AutoLayout::drained` on real ONNX Runtime sessions (ssdlite-person): the old layout's
//! sessions are gone before the next layout loads, and a model swapped in meanwhile stays.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;

use super::{AutoLayout, Pending, State};
use crate::engine::{DetectionFilter, Engine, EngineOptions, Layout, LayoutRequest};
use crate::ingest::Frame;
use crate::pipeline::Stats;

/// ssdlite-person on ORT in a fixed layout (also the dispatcher's tests' engine).
pub(crate) fn engine(instances: usize, threads: usize) -> Engine {
    engine_in(&bundled(), instances, threads)
}

fn bundled() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ssdlite-person")
}

/// The model folder `dir` on ORT in a fixed layout.
fn engine_in(dir: &std::path::Path, instances: usize, threads: usize) -> Engine {
    let model = crate::model::Model::load(dir).expect("model");
    let opts = EngineOptions {
        backend: Some("ort".into()),
        threads: 1,
    };
    let request = LayoutRequest::from_counts(instances, threads);
    Engine::from_model_layout(model, &opts, request).expect("engine")
}

fn stats() -> Arc<Stats> {
    Stats::new(Default::default())
}

fn pending(from: u64, instances: usize, threads: usize) -> Option<Pending> {
    Some(Pending {
        from,
        layout: Layout { instances, threads },
        chosen: None,
        since: Instant::now(),
    })
}

#[test]
fn the_old_layout_s_sessions_go_before_the_next_layout_loads() {
    let first = engine(1, 2);
    let sessions = first.sessions();
    let mut tune = AutoLayout::new();
    tune.pending = pending(first.id(), 2, 1);
    let slot = Arc::new(ArcSwap::from_pointee(first));
    assert!(tune.pending());
    tune.drained(&slot, &stats());
    assert!(!tune.pending());
    let now = slot.load_full();
    assert_eq!(
        now.layout(),
        Layout {
            instances: 2,
            threads: 1
        }
    );
    assert_eq!(now.instances(), 2);
    // Loading 2x1 beside the live 1x2 would have made it 3.
    assert_eq!(sessions.peak(), 2, "two layouts held sessions at once");
    assert_eq!(sessions.live(), 2);
    let frame = Frame::blank((300, 300), 640, 480);
    let (dets, _) = now
        .detect_frame_on(1, &frame, &DetectionFilter::default())
        .expect("the new layout detects");
    assert!(dets.iter().all(|d| d.confidence.is_finite()));
}

#[test]
fn a_model_swapped_in_meanwhile_stays_and_the_old_one_is_left_alone() {
    let tuned = Arc::new(engine(1, 2));
    let mut tune = AutoLayout::new();
    tune.pending = pending(tuned.id(), 2, 1);
    let slot = Arc::new(ArcSwap::new(tuned.clone()));
    let other = Arc::new(engine(1, 1));
    slot.store(other.clone());
    tune.drained(&slot, &stats());
    assert!(
        Arc::ptr_eq(&slot.load_full(), &other),
        "the twin's model serves"
    );
    assert_eq!(
        tuned.sessions().live(),
        1,
        "nothing loaded for the old model"
    );
    assert!(
        matches!(tune.state, State::Idle),
        "the new model is tuned on its own"
    );
}

#[test]
fn a_session_less_copy_fails_frames_without_panicking() {
    let full = engine(2, 1);
    let shell = full.unloaded();
    assert_ne!(shell.id(), full.id());
    assert_eq!(shell.layout(), full.layout());
    assert_eq!(shell.instances(), 1, "one pool worker, whatever the layout");
    let frame = Frame::blank((300, 300), 640, 480);
    for i in 0..3 {
        assert!(shell
            .detect_frame_on(i, &frame, &DetectionFilter::default())
            .is_err());
    }
    assert!(
        shell.warm_up().is_err(),
        "a copy without sessions cannot warm up"
    );
    assert!(full.warm_up().is_ok(), "both instances run");
    drop(full);
    assert_eq!(shell.sessions().live(), 0);
    let again = shell.relayout(Layout {
        instances: 1,
        threads: 1,
    });
    assert_eq!(again.expect("relayout of the copy").sessions().live(), 1);
}

/// A relayout that can load neither the next layout nor the old one (the model file went
/// away after the old sessions were dropped) leaves the session-less copy serving; the
/// tuner then loads the old layout again on a later tick, once the file is back.
#[test]
fn a_relayout_that_cannot_reload_retries_the_layout_that_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["model.toml", "labels.txt", "LICENSE", "ssdlite-person.onnx"] {
        std::fs::copy(bundled().join(f), dir.path().join(f)).expect("copy the model folder");
    }
    let first = engine_in(dir.path(), 1, 2);
    let sessions = first.sessions();
    let mut tune = AutoLayout::new();
    tune.pending = pending(first.id(), 2, 1);
    let slot = Arc::new(ArcSwap::from_pointee(first));
    let onnx = dir.path().join("ssdlite-person.onnx");
    let away = dir.path().join("away.onnx");
    std::fs::rename(&onnx, &away).expect("hide the weights");
    let stats = stats();
    tune.drained(&slot, &stats);
    assert_eq!(sessions.live(), 0, "nothing could load");
    let frame = Frame::blank((300, 300), 640, 480);
    let filter = DetectionFilter::default();
    assert!(slot.load().detect_frame_on(0, &frame, &filter).is_err());

    // Not due yet, then due while the file is still away: still session-less.
    let t0 = Instant::now();
    tune.retry(&slot, &stats, t0);
    assert_eq!(sessions.live(), 0);
    tune.retry(&slot, &stats, t0 + std::time::Duration::from_secs(2));
    assert_eq!(sessions.live(), 0);
    // The wait doubled: 2 s later is too early, 5 s later is due, and the file is back.
    std::fs::rename(&away, &onnx).expect("restore the weights");
    tune.retry(&slot, &stats, t0 + std::time::Duration::from_secs(3));
    assert_eq!(sessions.live(), 0, "backed off");
    tune.retry(&slot, &stats, t0 + std::time::Duration::from_secs(10));
    let now = slot.load_full();
    assert_eq!(
        now.layout(),
        Layout {
            instances: 1,
            threads: 2
        },
        "the layout that served"
    );
    assert_eq!(sessions.live(), 1);
    assert!(
        now.detect_frame_on(0, &frame, &filter).is_ok(),
        "frames detect again"
    );
    assert!(stats.layout().is_some(), "the serving layout is reported");
}

/// Failed frames are no throughput: a layout whose frames fail (they fail fast, so they
/// looked like the most frames per second) scores 0 and the layout that ran is chosen.
#[test]
fn a_layout_whose_frames_fail_scores_zero_and_the_one_that_ran_is_chosen() {
    let first = engine(0, 1); // instances auto: 1x1, then Nx1
    let stats = stats();
    let mut tune = AutoLayout::new();
    tune.observe(&first, true, &stats);
    assert!(matches!(tune.state, State::Trying { .. }), "tuning started");
    tune.observe(&first, false, &stats);
    assert!(tune.pending(), "a failed frame ends the layout's trial");
    let slot = Arc::new(ArcSwap::from_pointee(first));
    tune.drained(&slot, &stats);
    let second = slot.load_full();
    assert!(second.instances() >= 2, "the next layout serves");
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while stats.layout().is_none() {
        assert!(Instant::now() < deadline, "the tuner never settled");
        std::thread::sleep(std::time::Duration::from_millis(20));
        tune.observe(&second, true, &stats);
        assert!(!tune.pending(), "the failing layout was chosen");
    }
    let r = stats.layout().expect("reported");
    assert_eq!(r.instances, second.instances());
    assert_eq!(r.tried[0].fps, 0.0, "{:?}", r.tried);
    assert!(r.tried[1].fps > 0.0, "{:?}", r.tried);
}

/// A relayout left the session-less copy serving and the pipeline restarted (its tuner and
/// the reload it had planned went with it): the new tuner loads the layout again.
#[test]
fn a_restarted_pipeline_s_tuner_loads_a_session_less_engine_again() {
    let full = engine(1, 2);
    let sessions = full.sessions();
    let slot = Arc::new(ArcSwap::from_pointee(full.unloaded()));
    drop(full);
    assert_eq!(sessions.live(), 0);
    let stats = stats();
    let mut tune = AutoLayout::new();
    let shell = slot.load_full();
    tune.observe(&shell, false, &stats);
    drop(shell);
    tune.retry(&slot, &stats, Instant::now());
    let now = slot.load_full();
    assert!(now.is_loaded(), "the layout loaded again");
    assert_eq!(
        now.layout(),
        Layout {
            instances: 1,
            threads: 2
        }
    );
    assert_eq!(sessions.live(), 1);
    let frame = Frame::blank((300, 300), 640, 480);
    assert!(now
        .detect_frame_on(0, &frame, &DetectionFilter::default())
        .is_ok());
    assert!(stats.layout().is_some(), "the serving layout is reported");
}
