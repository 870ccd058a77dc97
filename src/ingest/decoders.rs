//! Decoder threads (issue 12 §1 and §4). libav's decoders (`avdec_h264`, ...) default to one
//! frame thread per core plus one, and each thread keeps its own reference frames: on the
//! sample clip that is ~6 MB of peak RSS for no speed, since inference, not decode, fills the
//! cores (docs/memory.md). Every libav decoder that decodebin plugs gets
//! `defaults::DECODER_MAX_THREADS` instead.

use gstreamer as gst;
use gstreamer::prelude::*;

/// Applies the thread cap to every libav decoder added anywhere inside `pipeline` later.
pub fn cap_threads(pipeline: &gst::Pipeline, max_threads: i32) {
    if max_threads <= 0 {
        return; // 0 is libav's own automatic choice: nothing to change.
    }
    pipeline.connect_deep_element_added(move |_, _, element| {
        if is_libav_decoder(element) {
            set_max_threads(element, max_threads);
        }
    });
}

fn is_libav_decoder(element: &gst::Element) -> bool {
    element
        .factory()
        .is_some_and(|f| f.name().starts_with("avdec_"))
}

fn set_max_threads(element: &gst::Element, n: i32) {
    let Some(spec) = element.find_property("max-threads") else {
        return;
    };
    // The property is a gint in current gst-libav; anything else is left at its default.
    if spec.value_type() == i32::static_type() {
        element.set_property("max-threads", n);
        tracing::debug!(element = %element.name(), max_threads = n, "decoder threads capped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh `avdec_h264` (gst-libav is a test dependency: `make deps`).
    fn avdec() -> gst::Element {
        assert!(
            gst::init().is_ok() && gst::ElementFactory::find("avdec_h264").is_some(),
            "GStreamer with gst-libav is a test dependency (make deps)"
        );
        gst::ElementFactory::make("avdec_h264")
            .build()
            .expect("avdec_h264")
    }

    #[test]
    fn a_libav_decoder_added_inside_a_bin_gets_the_cap_and_others_are_left_alone() {
        let dec = avdec();
        let pipeline = gst::Pipeline::new();
        cap_threads(&pipeline, 1);
        let bin = gst::Bin::new();
        pipeline.add(&bin).expect("bin");
        let other = gst::ElementFactory::make("queue").build().expect("queue");
        assert_eq!(dec.property::<i32>("max-threads"), 0, "libav's default");
        bin.add_many([&dec, &other]).expect("add");
        assert_eq!(dec.property::<i32>("max-threads"), 1);
        assert!(!is_libav_decoder(&other));
    }

    #[test]
    fn zero_leaves_libav_to_choose() {
        let dec = avdec();
        let pipeline = gst::Pipeline::new();
        cap_threads(&pipeline, 0);
        pipeline.add(&dec).expect("add");
        assert_eq!(dec.property::<i32>("max-threads"), 0);
    }
}
