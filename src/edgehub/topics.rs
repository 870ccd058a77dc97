//! The hub's MQTT topics (IoT Hub / EdgeHub conventions), built in one place.

/// Telemetry topic for an output, with message properties in the topic (url-encoded;
/// device and module ids are not encoded, as the SDKs do).
pub fn output(device: &str, module: &str, output: &str, properties: &[(String, String)]) -> String {
    let mut t = format!(
        "devices/{device}/modules/{module}/messages/events/%24.on={}&%24.ct=application%2Fjson&%24.ce=utf-8",
        urlencoding::encode(output)
    );
    for (k, v) in properties {
        t.push('&');
        t.push_str(&urlencoding::encode(k));
        t.push('=');
        t.push_str(&urlencoding::encode(v));
    }
    t
}

pub fn subscriptions(device: &str, module: &str) -> Vec<String> {
    vec![
        format!("{TWIN_RESPONSE}#"),
        format!("{DESIRED_PATCH}#"),
        format!("{METHOD_CALL}#"),
        format!("devices/{device}/modules/{module}/inputs/#"),
    ]
}

pub fn twin_get(rid: &str) -> String {
    format!("$iothub/twin/GET/?$rid={rid}")
}

pub fn reported_patch(rid: &str) -> String {
    format!("$iothub/twin/PATCH/properties/reported/?$rid={rid}")
}

pub fn method_response(status: u16, rid: &str) -> String {
    format!("$iothub/methods/res/{status}/?$rid={rid}")
}

pub(crate) const TWIN_RESPONSE: &str = "$iothub/twin/res/";
pub(crate) const DESIRED_PATCH: &str = "$iothub/twin/PATCH/properties/desired/";
pub(crate) const METHOD_CALL: &str = "$iothub/methods/POST/";

/// A query value of `$iothub/...?$rid=..&$version=..`.
pub(crate) fn param<'a>(topic: &'a str, key: &str) -> Option<&'a str> {
    let query = topic.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_edgehub_conventions() {
        let t = output(
            "dev1",
            "edgelens",
            "detections",
            &[
                ("source".into(), "cam 1".into()),
                ("model".into(), "ssdlite-person".into()),
            ],
        );
        assert_eq!(
            t,
            "devices/dev1/modules/edgelens/messages/events/%24.on=detections&%24.ct=application%2Fjson&%24.ce=utf-8&source=cam%201&model=ssdlite-person"
        );
        // A hostile output name or property cannot add wildcards or query keys.
        let t = output("d", "m", "a#b&c=d", &[("k+".into(), "v/#".into())]);
        assert!(!t.contains(['#', '+']), "{t}");
        assert!(t.contains("%24.on=a%23b%26c%3Dd"), "{t}");
        assert_eq!(twin_get("7"), "$iothub/twin/GET/?$rid=7");
        assert_eq!(
            reported_patch("8"),
            "$iothub/twin/PATCH/properties/reported/?$rid=8"
        );
        assert_eq!(
            method_response(404, "x1"),
            "$iothub/methods/res/404/?$rid=x1"
        );
        assert_eq!(
            subscriptions("d", "m"),
            vec![
                "$iothub/twin/res/#",
                "$iothub/twin/PATCH/properties/desired/#",
                "$iothub/methods/POST/#",
                "devices/d/modules/m/inputs/#"
            ]
        );
        assert_eq!(
            param("$iothub/twin/res/200/?$rid=7&$version=3", "$rid"),
            Some("7")
        );
        assert_eq!(
            param("$iothub/twin/res/200/?$rid=7&$version=3", "$version"),
            Some("3")
        );
        assert_eq!(param("$iothub/twin/res/200/", "$rid"), None);
    }
}
