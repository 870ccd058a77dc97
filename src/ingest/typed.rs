//! Strings to typed GLib values, per the type an element declares for a property. A value that
//! does not parse, or is out of the property's range, is an error naming the expected type;
//! nothing is ever interpreted as pipeline syntax.

use std::fmt::Display;
use std::str::FromStr;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::glib::translate::{ToGlibPtr, ToGlibPtrMut};
use gstreamer::glib::value::{SendValue, ToSendValue, ToValue};
use gstreamer::glib::{ParamFlags, ParamSpec, Type, Value};

/// `raw` as a value for the property `pspec` describes; `Err` says what was expected.
pub(super) fn value(pspec: &ParamSpec, raw: &str) -> Result<Value, String> {
    let flags = pspec.flags();
    if !flags.contains(ParamFlags::WRITABLE) || flags.contains(ParamFlags::CONSTRUCT_ONLY) {
        return Err("a writable property (this one cannot be set)".into());
    }
    let value = parse(pspec, raw)?;
    if !is_valid(pspec, &value) {
        return Err(format!(
            "a value this property accepts (type {})",
            pspec.value_type()
        ));
    }
    Ok(value)
}

fn parse(pspec: &ParamSpec, raw: &str) -> Result<Value, String> {
    let t = pspec.value_type();
    if t == Type::STRING {
        return Ok(raw.to_value());
    }
    if t == Type::BOOL {
        return boolean(raw).map(|b| b.to_value());
    }
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecInt>() {
        return ranged(raw, p.minimum(), p.maximum(), "an integer");
    }
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt>() {
        return ranged(raw, p.minimum(), p.maximum(), "an unsigned integer");
    }
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecInt64>() {
        return ranged(raw, p.minimum(), p.maximum(), "an integer");
    }
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt64>() {
        return ranged(raw, p.minimum(), p.maximum(), "an unsigned integer");
    }
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecDouble>() {
        return ranged(raw, p.minimum(), p.maximum(), "a number");
    }
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecFloat>() {
        return ranged(raw, p.minimum(), p.maximum(), "a number");
    }
    if t.is_a(Type::ENUM) {
        return enumerated(t, raw);
    }
    if t.is_a(Type::FLAGS) {
        return flags(t, raw);
    }
    if t.is_a(Type::OBJECT) || t.is_a(Type::POINTER) {
        return Err(format!("an object ({t}), which a preset cannot set"));
    }
    // Boxed GStreamer values (caps, fractions, structures): GStreamer's own value parser,
    // which reads one value of the given type and nothing else.
    <Value as gst::prelude::GstValueExt>::deserialize(raw, t)
        .map_err(|_| format!("a value of type {t}"))
}

fn boolean(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err("a boolean (true or false)".into()),
    }
}

fn ranged<T>(raw: &str, min: T, max: T, what: &str) -> Result<Value, String>
where
    T: FromStr + PartialOrd + Display + ToValue,
{
    match raw.trim().parse::<T>() {
        Ok(v) if v >= min && v <= max => Ok(v.to_value()),
        _ => Err(format!("{what} in {min}..={max}")),
    }
}

fn enumerated(t: Type, raw: &str) -> Result<Value, String> {
    let class = glib::EnumClass::with_type(t).ok_or_else(|| format!("a value of type {t}"))?;
    let raw = raw.trim();
    class
        .to_value_by_nick(raw)
        .or_else(|| class.to_value_by_name(raw))
        .or_else(|| raw.parse::<i32>().ok().and_then(|i| class.to_value(i)))
        .ok_or_else(|| {
            let nicks: Vec<&str> = class.values().iter().map(|v| v.nick()).collect();
            format!("one of: {}", nicks.join(", "))
        })
}

/// Flags as nicks joined by `+` (GStreamer's notation) or `|`.
fn flags(t: Type, raw: &str) -> Result<Value, String> {
    let class = glib::FlagsClass::with_type(t).ok_or_else(|| format!("a value of type {t}"))?;
    let expected = || {
        let nicks: Vec<&str> = class.values().iter().map(|v| v.nick()).collect();
        format!("flags joined by '+', from: {}", nicks.join(", "))
    };
    let mut bits = 0u32;
    for part in raw.split(['+', '|']).map(str::trim) {
        let v = class
            .value_by_nick(part)
            .or_else(|| class.value_by_name(part))
            .ok_or_else(expected)?;
        bits |= v.value();
    }
    class.to_value(bits).ok_or_else(expected)
}

/// GLib's own check (ranges, enum members): `set_property` would panic on what it rejects.
fn is_valid(pspec: &ParamSpec, value: &Value) -> bool {
    let mut copy = value.clone();
    // SAFETY: both pointers come from live, owned GLib wrappers of matching types (the value
    // was made for this pspec's type); g_param_value_validate only reads the pspec and may
    // modify the copy, which is dropped.
    let changed = unsafe {
        glib::gobject_ffi::g_param_value_validate(pspec.to_glib_none().0, copy.to_glib_none_mut().0)
    };
    changed == glib::ffi::GFALSE
}

/// A `video/x-raw` caps field from a preset: sizes are integers, rates and aspect ratios
/// fractions, formats names.
pub(super) fn caps_field(name: &str, raw: &str) -> Result<SendValue, String> {
    match name {
        "width" | "height" => {
            // A frame of the largest size is allocated per buffer: bound it (8K).
            let max = crate::defaults::SOURCE_MAX_SIDE;
            match raw.trim().parse::<i32>() {
                Ok(v) if (1..=max).contains(&v) => Ok(v.to_send_value()),
                _ => Err(format!("an integer in 1..={max} (8K is the largest frame)")),
            }
        }
        "framerate" | "pixel-aspect-ratio" => fraction(raw),
        "format" => {
            let ok = !raw.is_empty() && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if ok {
                Ok(raw.to_send_value())
            } else {
                Err("a video format name such as I420 or RGB".into())
            }
        }
        _ => Err("a caps field of width, height, framerate, pixel-aspect-ratio, format".into()),
    }
}

fn fraction(raw: &str) -> Result<SendValue, String> {
    let expected = || "a fraction N/D or an integer".to_string();
    let (n, d) = raw.trim().split_once('/').unwrap_or((raw.trim(), "1"));
    let n: i32 = n.trim().parse().map_err(|_| expected())?;
    let d: i32 = d.trim().parse().map_err(|_| expected())?;
    if n < 0 || d <= 0 {
        return Err(expected());
    }
    Ok(gst::Fraction::new(n, d).to_send_value())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gstreamer::prelude::*;

    fn pspec(element: &str, property: &str) -> ParamSpec {
        gst::init().expect("gstreamer");
        let e = gst::ElementFactory::make(element).build().expect(element);
        e.find_property(property).expect(property)
    }

    #[test]
    fn integers_are_parsed_and_range_checked() {
        let p = pspec("rtspsrc", "latency");
        assert_eq!(value(&p, "250").unwrap().get::<u32>().unwrap(), 250);
        let e = value(&p, "abc").unwrap_err();
        assert!(e.contains("unsigned integer"), "{e}");
        assert!(value(&p, "-1").is_err());
        assert!(value(&p, "1 ! filesink").is_err());
        let n = pspec("videotestsrc", "num-buffers");
        assert_eq!(value(&n, "-1").unwrap().get::<i32>().unwrap(), -1);
        assert!(value(&n, "-2").is_err(), "below the declared minimum");
    }

    #[test]
    fn enums_flags_booleans_and_caps() {
        let p = pspec("videotestsrc", "pattern");
        assert!(value(&p, "ball").is_ok());
        let e = value(&p, "bal").unwrap_err();
        assert!(e.contains("one of:") && e.contains("smpte"), "{e}");
        let f = pspec("rtspsrc", "protocols");
        assert!(value(&f, "tcp").is_ok());
        assert!(value(&f, "tcp+udp").is_ok());
        assert!(value(&f, "tcp ! fakesink").is_err());
        let b = pspec("videotestsrc", "is-live");
        assert!(value(&b, "true").is_ok());
        assert!(value(&b, "maybe").is_err());
        let c = pspec("uridecodebin", "caps");
        assert!(value(&c, "video/x-raw").is_ok());
    }

    #[test]
    fn caps_fields_are_typed() {
        assert!(caps_field("width", "640").is_ok());
        assert!(caps_field("width", "0").is_err());
        let max = crate::defaults::SOURCE_MAX_SIDE;
        assert!(caps_field("height", &max.to_string()).is_ok());
        let e = caps_field("height", "30000").unwrap_err();
        assert!(e.contains(&format!("1..={max}")), "{e}");
        assert!(caps_field("width", &(max + 1).to_string()).is_err());
        assert!(caps_field("framerate", "30/1").is_ok());
        assert!(caps_field("framerate", "30").is_ok());
        assert!(caps_field("framerate", "x").is_err());
        assert!(caps_field("format", "I420").is_ok());
        assert!(caps_field("format", "I420,width=1").is_err());
        assert!(caps_field("colorimetry", "bt709").is_err());
    }
}
