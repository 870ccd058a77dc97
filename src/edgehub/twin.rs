//! What EdgeHub sends the module, parsed from (topic, payload) into a [`TwinEvent`]. Topics
//! come from the network: anything malformed (no request id, a non-numeric status, an id
//! that would inject into our reply topic) parses to None instead of a half-event.

use super::topics::{param, DESIRED_PATCH, METHOD_CALL, TWIN_RESPONSE};

/// Request ids and method names are echoed into reply topics and logs: keep them short.
const MAX_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwinEvent<'a> {
    /// `$iothub/twin/res/{status}/?$rid={rid}`: the answer to a twin GET (the body is the
    /// twin) or to a reported-properties patch (empty body).
    Response {
        status: u16,
        rid: &'a str,
        body: &'a [u8],
    },
    /// `$iothub/twin/PATCH/properties/desired/?$version={version}`.
    DesiredPatch {
        version: Option<i64>,
        body: &'a [u8],
    },
    /// `$iothub/methods/POST/{name}/?$rid={rid}`: answer on `topics::method_response`.
    MethodCall {
        name: &'a str,
        rid: &'a str,
        payload: &'a [u8],
    },
    /// `devices/{device}/modules/{module}/inputs/{input}/...`: a message routed to an input.
    Input { input: &'a str, body: &'a [u8] },
}

impl<'a> TwinEvent<'a> {
    pub fn parse(topic: &'a str, payload: &'a [u8]) -> Option<TwinEvent<'a>> {
        if let Some(rest) = topic.strip_prefix(TWIN_RESPONSE) {
            let status = rest.split('/').next()?;
            if status.is_empty() || !status.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            return Some(TwinEvent::Response {
                status: status.parse().ok()?,
                rid: rid(topic)?,
                body: payload,
            });
        }
        if topic.starts_with(DESIRED_PATCH) {
            let version = param(topic, "$version").and_then(|v| v.parse().ok());
            return Some(TwinEvent::DesiredPatch {
                version,
                body: payload,
            });
        }
        if let Some(rest) = topic.strip_prefix(METHOD_CALL) {
            let name = rest.split(['/', '?']).next()?;
            let name_ok = !name.is_empty()
                && name.len() <= MAX_ID_LEN
                && name.bytes().all(|b| b.is_ascii_graphic());
            if !name_ok {
                return None;
            }
            return Some(TwinEvent::MethodCall {
                name,
                rid: rid(topic)?,
                payload,
            });
        }
        let rest = topic.strip_prefix("devices/")?;
        let (_, after) = rest.split_once("/inputs/")?;
        let input = after.split('/').next()?;
        if input.is_empty() || !rest.contains("/modules/") {
            return None;
        }
        Some(TwinEvent::Input {
            input,
            body: payload,
        })
    }
}

/// A request id we can safely echo into a reply topic.
fn rid(topic: &str) -> Option<&str> {
    let rid = param(topic, "$rid")?;
    let ok = !rid.is_empty()
        && rid.len() <= MAX_ID_LEN
        && rid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    ok.then_some(rid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_kinds_parse() {
        assert_eq!(
            TwinEvent::parse("$iothub/twin/res/200/?$rid=7", b"{}"),
            Some(TwinEvent::Response {
                status: 200,
                rid: "7",
                body: b"{}"
            })
        );
        assert_eq!(
            TwinEvent::parse("$iothub/twin/res/204/?$rid=8&$version=12", b""),
            Some(TwinEvent::Response {
                status: 204,
                rid: "8",
                body: b""
            })
        );
        assert_eq!(
            TwinEvent::parse(
                "$iothub/twin/PATCH/properties/desired/?$version=5",
                b"{\"a\":1}"
            ),
            Some(TwinEvent::DesiredPatch {
                version: Some(5),
                body: b"{\"a\":1}"
            })
        );
        assert_eq!(
            TwinEvent::parse("$iothub/methods/POST/getStats/?$rid=1f-2e", b"null"),
            Some(TwinEvent::MethodCall {
                name: "getStats",
                rid: "1f-2e",
                payload: b"null"
            })
        );
        assert_eq!(
            TwinEvent::parse("devices/d/modules/m/inputs/in1/%24.ct=x", b"hi"),
            Some(TwinEvent::Input {
                input: "in1",
                body: b"hi"
            })
        );
    }

    #[test]
    fn hostile_topics_parse_to_none() {
        for topic in [
            "$iothub/twin/res/200/",            // no rid: cannot match a request
            "$iothub/twin/res/200/?$version=3", // no rid either
            "$iothub/twin/res/OK/?$rid=1",      // non-numeric status
            "$iothub/twin/res/-1/?$rid=1",
            "$iothub/twin/res/99999999999/?$rid=1", // status overflows
            "$iothub/twin/res//?$rid=1",
            "$iothub/twin/res/200/?$rid=",             // empty rid
            "$iothub/twin/res/200/?$rid=1/../#",       // would inject into our topics
            "$iothub/methods/POST/getStats/",          // no rid: no way to answer
            "$iothub/methods/POST/getStats/?$rid=a&b", // '&' splits: rid is "a"... see below
            "$iothub/methods/POST//?$rid=1",           // no name
            "$iothub/methods/POST/get Stats/?$rid=1",  // space in name
            "devices/d/modules/m/inputs//x",           // empty input
            "devices/d/inputs/x",                      // not a module input
            "garbage",
            "",
            "$iothub/twin/res",
        ] {
            let parsed = TwinEvent::parse(topic, b"x");
            if topic.ends_with("$rid=a&b") {
                // "b" is a key without value: the rid is the clean "a".
                assert!(
                    matches!(parsed, Some(TwinEvent::MethodCall { rid: "a", .. })),
                    "{topic}"
                );
                continue;
            }
            assert_eq!(parsed, None, "{topic}");
        }
        let long = format!("$iothub/twin/res/200/?$rid={}", "1".repeat(129));
        assert_eq!(TwinEvent::parse(&long, b""), None);
    }

    #[test]
    fn a_garbage_version_is_no_version() {
        assert_eq!(
            TwinEvent::parse("$iothub/twin/PATCH/properties/desired/?$version=abc", b"{}"),
            Some(TwinEvent::DesiredPatch {
                version: None,
                body: b"{}"
            })
        );
    }
}
