//! Builds the GStreamer pipeline in code: the source head (from a preset, or the CLI's raw
//! launch text), then `queue ! videoscale ! caps ! videoconvert ! caps ! appsink`. Scale
//! comes before convert: converting only the scaled pixels is far cheaper.

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::frame::{Mode, ScaleTarget};
use super::presets::{self, ElementSpec};
use super::{IngestError, SourceHead, SourceSpec};
use crate::model::ColorOrder;
use crate::redact;

/// A built pipeline and the handles the run loop reads.
pub struct Built {
    pub pipeline: gst::Pipeline,
    pub appsink: gst_app::AppSink,
    /// videoscale's sink pad: its caps give the original frame size.
    pub scale_sink: gst::Pad,
}

/// Builds (does not start) the pipeline for `spec`, scaling to `target`, with appsink
/// settings for `mode`. The run loop uses it; tests inspect what it built.
pub fn build(spec: &SourceSpec, target: &ScaleTarget, mode: Mode) -> Result<Built, IngestError> {
    let what = spec.describe();
    let err = |message: String| IngestError::Build {
        what: what.clone(),
        message: redact::text(&message),
    };
    let (tail, appsink, scale_sink) = tail(target, mode)?;
    let entry = tail[0].clone();
    let pipeline = match &spec.head {
        SourceHead::Element(e) => {
            let pipeline = gst::Pipeline::new();
            let chain = chain(e)?;
            pipeline.add_many(&chain).map_err(|e| err(e.to_string()))?;
            pipeline.add(&entry).map_err(|e| err(e.to_string()))?;
            for pair in chain.windows(2) {
                link_when_ready(&pair[0], &pair[1]).map_err(err)?;
            }
            if let Some(last) = chain.last() {
                link_when_ready(last, &entry).map_err(err)?;
            }
            pipeline
        }
        SourceHead::Launch(raw) => {
            // CLI only. A named identity closes the text; gst-launch itself links any
            // dynamic pads up to it, and the tail hangs off its static src pad.
            let text = format!("{} ! identity name=edgelens_head", raw.text());
            let pipeline = gst::parse::launch(&text)
                .map_err(|e| err(e.to_string()))?
                .downcast::<gst::Pipeline>()
                .map_err(|_| err("not a pipeline".into()))?;
            let head = pipeline
                .by_name("edgelens_head")
                .ok_or_else(|| err("the launch text hides its end".into()))?;
            pipeline.add(&entry).map_err(|e| err(e.to_string()))?;
            head.link(&entry).map_err(|e| err(e.to_string()))?;
            pipeline
        }
    };
    super::decoders::cap_threads(&pipeline, crate::defaults::DECODER_MAX_THREADS);
    pipeline
        .add_many(&tail[1..])
        .map_err(|e| err(e.to_string()))?;
    gst::Element::link_many(&tail).map_err(|e| err(e.to_string()))?;
    Ok(Built {
        pipeline,
        appsink,
        scale_sink,
    })
}

/// Source, optional caps filter, optional decodebin: every element made by factory name.
fn chain(spec: &ElementSpec) -> Result<Vec<gst::Element>, IngestError> {
    let mut chain = vec![presets::make_source(spec)?];
    if let Some(caps) = presets::source_caps(spec)? {
        let filter = presets::make("capsfilter")?;
        filter.set_property("caps", &caps);
        chain.push(filter);
    }
    if spec.decode {
        chain.push(presets::make("decodebin")?);
    }
    Ok(chain)
}

/// Links `a` to `b` now when `a` has a static src pad; otherwise (rtspsrc, decodebin,
/// uridecodebin) links the first video pad `a` adds.
fn link_when_ready(a: &gst::Element, b: &gst::Element) -> Result<(), String> {
    if a.static_pad("src").is_some() {
        return a.link(b).map_err(|e| e.to_string());
    }
    let sink = b
        .static_pad("sink")
        .ok_or_else(|| format!("{} has no sink pad", b.name()))?;
    // A weak ref: a closure owning the pad would keep the pipeline alive in a cycle.
    let sink = sink.downgrade();
    a.connect_pad_added(move |a, pad| {
        let Some(sink) = sink.upgrade() else { return };
        if sink.is_linked() || !is_video(pad) {
            return;
        }
        if let Err(e) = pad.link(&sink) {
            tracing::warn!(element = %a.name(), pad = %pad.name(), error = ?e, "cannot link the video pad");
        }
    });
    Ok(())
}

/// Raw video from a decoder, or an RTP stream carrying video (rtspsrc).
fn is_video(pad: &gst::Pad) -> bool {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    caps.structure(0).is_some_and(|s| {
        s.name().starts_with("video/")
            || (s.name() == "application/x-rtp" && s.get::<&str>("media").ok() == Some("video"))
    })
}

type Tail = (Vec<gst::Element>, gst_app::AppSink, gst::Pad);

fn tail(t: &ScaleTarget, mode: Mode) -> Result<Tail, IngestError> {
    let queue = presets::make("queue")?;
    queue.set_property("max-size-buffers", 4u32);
    let scale = presets::make("videoscale")?;
    // Letterbox keeps the aspect ratio with black borders; stretching needs borders off.
    scale.set_property("add-borders", t.letterbox);
    let mut size = gst::Caps::builder("video/x-raw")
        .field("width", t.width.min(i32::MAX as u32) as i32)
        .field("height", t.height.min(i32::MAX as u32) as i32);
    if t.letterbox {
        size = size.field("pixel-aspect-ratio", gst::Fraction::new(1, 1));
    }
    let size_filter = presets::make("capsfilter")?;
    size_filter.set_property("caps", size.build());
    let convert = presets::make("videoconvert")?;
    let format = match t.order {
        ColorOrder::Rgb => "RGB",
        ColorOrder::Bgr => "BGR",
    };
    let format_filter = presets::make("capsfilter")?;
    format_filter.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", format)
            .build(),
    );
    let (max_buffers, drop, sync) = match mode {
        Mode::Live => (1, true, false),
        Mode::Lossless => (4, false, false),
        Mode::Realtime => (4, false, true),
    };
    let appsink = presets::make("appsink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| IngestError::NoElement {
            element: "appsink".into(),
        })?;
    appsink.set_max_buffers(max_buffers);
    appsink.set_drop(drop);
    appsink.set_sync(sync);
    appsink.set_property("enable-last-sample", false);
    let scale_sink = scale.static_pad("sink").ok_or_else(|| IngestError::Build {
        what: "videoscale".into(),
        message: "no sink pad".into(),
    })?;
    let elements = vec![
        queue,
        scale,
        size_filter,
        convert,
        format_filter,
        appsink.clone().upcast(),
    ];
    Ok((elements, appsink, scale_sink))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ScaleTarget {
        ScaleTarget {
            width: 320,
            height: 240,
            letterbox: true,
            order: ColorOrder::Rgb,
        }
    }

    #[test]
    fn a_preset_builds_only_factory_elements() {
        crate::ingest::init().expect("gstreamer");
        let spec = crate::ingest::resolve("test", &Default::default(), None).expect("test");
        let built = build(&spec, &target(), Mode::Live).expect("build");
        let mut factories: Vec<String> = built
            .pipeline
            .iterate_recurse()
            .into_iter()
            .filter_map(Result::ok)
            .filter_map(|e| e.factory().map(|f| f.name().to_string()))
            .collect();
        factories.sort();
        assert_eq!(
            factories,
            [
                "appsink",
                "capsfilter",
                "capsfilter",
                "capsfilter",
                "queue",
                "videoconvert",
                "videoscale",
                "videotestsrc"
            ]
        );
    }
}
