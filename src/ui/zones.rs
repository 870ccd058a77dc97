//! `POST /api/zones`: the page's zones and lines, checked by the same code that checks the
//! twin's (`SceneConfig::validate`, which `control::validate` runs on every desired patch),
//! then applied live in local mode. Module mode has no control: the twin is the single
//! control plane.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Deserialize;

use crate::pipeline::LiveSettings;
use crate::scene::{LineConfig, SceneConfig, ZoneConfig};

/// The body the page sends: exactly the twin's `zones` and `lines` properties.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenePatch {
    #[serde(default)]
    pub zones: BTreeMap<String, ZoneConfig>,
    #[serde(default)]
    pub lines: BTreeMap<String, LineConfig>,
}

/// Applies a checked scene; `Err` lists every problem.
pub type Control = Arc<dyn Fn(&[u8]) -> Result<Arc<SceneConfig>, Vec<String>> + Send + Sync>;

/// The new scene: `current` with its zones and lines replaced, if valid.
pub fn patched(body: &[u8], current: &SceneConfig) -> Result<SceneConfig, Vec<String>> {
    let patch: ScenePatch =
        serde_json::from_slice(body).map_err(|e| vec![format!("not zones/lines JSON: {e}")])?;
    let next = SceneConfig {
        zones: patch.zones,
        lines: patch.lines,
        ..current.clone()
    };
    let errors = next.validate();
    if errors.is_empty() {
        Ok(next)
    } else {
        Err(errors)
    }
}

/// DNS rebinding: a web page can make its own name resolve to 127.0.0.1 and then talk to
/// this server "same-origin". Requests are served only when the page was opened by IP
/// address or as `localhost`, which a rebinding page cannot claim.
pub fn host_may_change(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// Local mode: a valid scene replaces the live one (tracks and other settings stay).
pub fn local_control(settings: Arc<ArcSwap<LiveSettings>>) -> Control {
    Arc::new(move |body| {
        let current = settings.load_full();
        let next = Arc::new(patched(body, &current.scene)?);
        let mut live = (*current).clone();
        live.scene = next.clone();
        settings.store(Arc::new(live));
        tracing::info!(
            zones = next.zones.len(),
            lines = next.lines.len(),
            "zones and lines applied from the live view"
        );
        Ok(next)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_patch_replaces_shapes_and_keeps_knobs() {
        let current = SceneConfig {
            heartbeat_secs: 5.0,
            ..SceneConfig::default()
        };
        let body = br#"{"zones": {"door": {"polygon": [[0.1,0.1],[0.5,0.1],[0.5,0.5],[0.1,0.5]], "classes": ["person"]}},
                        "lines": {"gate": {"from": [0.5,0], "to": [0.5,1]}}}"#;
        let s = patched(body, &current).unwrap();
        assert_eq!(s.zones["door"].polygon.len(), 4);
        assert_eq!(s.zones["door"].classes, vec!["person".to_string()]);
        assert_eq!(s.lines["gate"].to, [0.5, 1.0]);
        assert_eq!(s.heartbeat_secs, 5.0);
    }

    #[test]
    fn invalid_patches_list_their_problems() {
        let d = SceneConfig::default();
        let e = patched(br#"{"zones": {"a b": {"polygon": [[0,0],[2,0]]}}}"#, &d).unwrap_err();
        assert!(e.iter().any(|m| m.contains("name")), "{e:?}");
        assert!(e.iter().any(|m| m.contains("3..")), "{e:?}");
        let e = patched(br#"{"zones": {}, "model": {}}"#, &d).unwrap_err();
        assert!(e[0].contains("unknown field"), "{e:?}");
        assert!(patched(b"[1,2", &d).is_err());
        let e = patched(
            br#"{"lines": {"l": {"from": [0.5,0.5], "to": [0.5,0.5]}}}"#,
            &d,
        );
        assert!(e.unwrap_err()[0].contains("zero length"));
    }

    #[test]
    fn only_ip_or_localhost_hosts_may_change_zones() {
        for ok in [
            "127.0.0.1:9601",
            "localhost:9601",
            "10.0.0.7",
            "[::1]:9601",
            "LOCALHOST",
        ] {
            assert!(host_may_change(ok), "{ok}");
        }
        for bad in [
            "evil.example:9601",
            "evil.example",
            "127.0.0.1.nip.io:9601",
            "",
        ] {
            assert!(!host_may_change(bad), "{bad}");
        }
    }

    #[test]
    fn local_control_applies_live() {
        let settings = Arc::new(ArcSwap::from_pointee(LiveSettings::default()));
        let apply = local_control(settings.clone());
        let body = br#"{"lines": {"gate": {"from": [0.5,0], "to": [0.5,1]}}}"#;
        apply(body).unwrap();
        assert!(settings.load().scene.lines.contains_key("gate"));
        assert!(apply(br#"{"lines": 3}"#).is_err());
        assert!(settings.load().scene.lines.contains_key("gate"));
    }
}
