//! The cache stays within its bound, least recently used first, never the running model.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::archives;
use crate::server::Route;
use crate::{Env, FetchSettings};

#[test]
fn lru_eviction_keeps_the_running_model() {
    let env = Env::new();
    // Three models of about 300 kB unpacked; room for two.
    let running: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
    let pins = running.clone();
    let settings = FetchSettings {
        cache_max_bytes: 700_000,
        in_use: Some(Arc::new(move || pins.lock().unwrap().clone())),
        ..env.settings()
    };
    let fetch = |name: &str, fill: u8| {
        let ar = archives::model(&vec![fill; 300_000], |_| {});
        let sha = archives::sha(&ar);
        let got = env
            .serve_fetch(
                &format!("/{name}.tgz"),
                Route::bytes(ar),
                settings.clone(),
                Some(sha.clone()),
            )
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        (got.dir, sha)
    };
    let (dir_a, sha_a) = fetch("a", 1);
    *running.lock().unwrap() = vec![dir_a.clone()];
    let (_, sha_b) = fetch("b", 2);
    let (_, sha_c) = fetch("c", 3);
    let mut left = crate::names(&env.cache());
    left.retain(|n| n != ".tmp");
    left.sort();
    let mut want = vec![sha_a.clone(), sha_c.clone()];
    want.sort();
    assert_eq!(left, want, "b (least recently used, not running) should go");
    assert!(dir_a.join("w.onnx").is_file());
    // Using b again brings it back and now a, running, still stays: c goes.
    let (_, sha_b2) = fetch("b", 2);
    assert_eq!(sha_b, sha_b2);
    let mut left = crate::names(&env.cache());
    left.retain(|n| n != ".tmp");
    assert!(
        left.contains(&sha_a) && left.contains(&sha_b) && !left.contains(&sha_c),
        "{left:?}"
    );
    env.assert_clean();
}
