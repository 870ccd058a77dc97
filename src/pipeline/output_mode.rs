//! What the pipeline publishes, per `output.mode` / `--output-mode`.

/// What the pipeline publishes: per-frame detections, scene events and counts, or both.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// One message per frame with detections (AVA schema, `entity.id` = track id).
    Frames,
    /// Track events (`new`/`update`/`end`) and counts only: what fits a hub's quota.
    #[default]
    Events,
    Both,
}

impl OutputMode {
    pub fn frames(self) -> bool {
        matches!(self, OutputMode::Frames | OutputMode::Both)
    }

    pub fn events(self) -> bool {
        matches!(self, OutputMode::Events | OutputMode::Both)
    }
}

impl std::str::FromStr for OutputMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "frames" => Ok(OutputMode::Frames),
            "events" => Ok(OutputMode::Events),
            "both" => Ok(OutputMode::Both),
            _ => Err(format!(
                "unknown output mode '{s}'; use frames, events or both"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::LiveSettings;

    #[test]
    fn output_mode_parses_and_serializes_lowercase() {
        for (s, m) in [
            ("frames", OutputMode::Frames),
            ("events", OutputMode::Events),
            ("both", OutputMode::Both),
        ] {
            assert_eq!(s.parse::<OutputMode>(), Ok(m));
            assert_eq!(serde_json::to_value(m).unwrap(), serde_json::json!(s));
        }
        assert!("all".parse::<OutputMode>().unwrap_err().contains("frames"));
        assert_eq!(OutputMode::default(), OutputMode::Events);
        assert!(OutputMode::Both.frames() && OutputMode::Both.events());
        assert!(!OutputMode::Frames.events() && !OutputMode::Events.frames());
        // Hand-built settings keep today's per-frame output.
        assert_eq!(LiveSettings::default().output_mode, OutputMode::Frames);
    }
}
