//! `model.toml` parsing and validation, then the decoder the manifest names.
#![no_main]

use edgelens::engine::decoders;
use edgelens::model::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = Manifest::parse(text) else {
        return;
    };
    assert!(m.input.width > 0 && m.input.height > 0);
    // Bounded: a decoder builds tables from the input size before the graph is looked at.
    let max = edgelens::defaults::MODEL_INPUT_MAX_SIDE;
    assert!(m.input.width <= max && m.input.height <= max);
    assert!(!m.input.std.is_some_and(|s| s.contains(&0.0)));
    let _ = m.input.shape();
    // A manifest that parses serializes back to one that parses the same.
    if let Ok(back) = toml::to_string(&m) {
        let again = Manifest::parse(&back).expect("a serialized manifest parses again");
        assert_eq!((&again.name, &again.file), (&m.name, &m.file));
        assert_eq!(again.input.shape(), m.input.shape());
    }
    if let Ok((decoder, th)) = decoders::build(&m.decoder, &m.input) {
        let _ = decoder.outputs();
        // Thresholds that build are checked ones: in range, never NaN.
        assert!((0.0..=1.0).contains(&th.min_confidence));
        assert!(th.nms_iou.is_none_or(|v| (0.0..=1.0).contains(&v)));
        assert!(th.max_detections >= 1);
    }
});
