//! Issue 9 item 12: the TensorFlow backend's environment (TF_CPP_MIN_LOG_LEVEL, TENSORFLOW_DIR)
//! is set once by `prepare_process` at start-up, never by a model load: `set_var` from the
//! model-load thread races every other thread reading the environment (unsound).
//! Its own test binary: it edits this process's environment before any load.

use std::path::Path;

use edgelens::engine::{Engine, EngineOptions};

#[test]
fn loading_a_tensorflow_model_leaves_the_environment_alone() {
    if !edgelens::engine::backends::available().contains(&"tensorflow") {
        eprintln!("skipped: this build has no tensorflow backend");
        return;
    }
    // Edition 2021 and nothing else runs yet in this binary: editing the environment is safe.
    std::env::remove_var("TF_CPP_MIN_LOG_LEVEL");
    if std::env::var_os("TENSORFLOW_DIR").is_none() {
        let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/tensorflow");
        std::env::set_var("TENSORFLOW_DIR", deps);
    }
    let before: Vec<(String, String)> = std::env::vars().collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/ssdlite-person-tf");
    let engine = Engine::load(
        &dir,
        &EngineOptions {
            backend: Some("tensorflow".into()),
            threads: 1,
        },
    )
    .expect("TensorFlow model loads (make deps; TENSORFLOW_DIR)");
    drop(engine);
    let after: Vec<(String, String)> = std::env::vars().collect();
    // Names only: values may be secrets.
    let changed: Vec<&str> = after
        .iter()
        .filter(|kv| !before.contains(kv))
        .chain(before.iter().filter(|kv| !after.contains(kv)))
        .map(|(k, _)| k.as_str())
        .collect();
    assert!(
        changed.is_empty(),
        "a model load changed the process environment: {changed:?}"
    );

    // Start-up is where it belongs.
    // SAFETY: the loads above are finished; no thread reads the environment now.
    unsafe { edgelens::engine::backends::prepare_process() };
    assert_eq!(std::env::var("TF_CPP_MIN_LOG_LEVEL").as_deref(), Ok("1"));
}
