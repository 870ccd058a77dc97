//! The twin patch path: merge (JSON merge patch), validate, plan. Input: a JSON patch, or
//! an array of patches applied in order, over a fixed desired document.
#![no_main]

use edgelens::control::apply::{self, Current};
use edgelens::control::config::{self, DesiredConfig};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

fn base() -> DesiredConfig {
    config::parse(&json!({
        "model": {"name": "ssdlite-person"},
        "source": {"uri": "rtsp://cam/1", "params": {"latency_ms": "200"}},
    }))
    .expect("the fixed base is valid")
}

fn document() -> Value {
    json!({
        "$version": 3,
        "model": {"name": "nanodet-m", "threads": 2},
        "detection": {"minConfidence": 0.5, "classes": ["person"]},
        "output": {"name": "detections"},
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let patches = match input {
        Value::Array(a) => a,
        v => vec![v],
    };
    let base = base();
    let mut doc = document();
    let mut applied = base.clone();
    let mut target = base.model.clone().unwrap_or_default();
    for patch in patches.iter().take(16) {
        let Ok(candidate) = apply::patched(&doc, patch) else {
            assert!(!patch.is_object(), "an object patch always merges");
            continue;
        };
        let current = Current {
            base: &base,
            applied: &applied,
            model_target: &target,
        };
        let plan = match apply::plan(&candidate, current) {
            Ok(plan) => plan,
            Err(errors) => {
                assert!(!errors.is_empty(), "a rejection names its reasons");
                continue;
            }
        };
        let errors = config::validate(&plan.config);
        assert!(
            errors.is_empty(),
            "plan accepted an invalid config: {errors:?}"
        );
        let wanted = plan.config.model.clone().unwrap_or_default();
        match &plan.load_model {
            Some(m) => assert!(m == &wanted && m != &target, "load {m:?}"),
            None => assert_eq!(wanted, target, "a model change must start a load"),
        }
        // The same document once more, over what it produced, changes nothing.
        let again = apply::plan(
            &candidate,
            Current {
                base: &base,
                applied: &plan.config,
                model_target: &wanted,
            },
        )
        .expect("an accepted document stays accepted");
        assert_eq!(again.config, plan.config);
        assert!(!again.restart_source && !again.settings_changed && again.load_model.is_none());
        doc = candidate;
        applied = plan.config;
        target = wanted;
    }
});
