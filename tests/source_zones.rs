//! Per-source zones and lines (issue 11 §3 with issue 12 §3), on the real sample video with
//! real GStreamer and ORT: each source gets zone events for its own zones only, a source
//! without its own runs the shared ones, changing one source's zones through the twin
//! leaves the other's tracks alone, and bad per-source zones are rejected with a reason.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::edgehub::Harness;
use common::*;
use serde_json::{json, Value};

/// The band of pavement people walk along (feet at y ~ 0.4..0.7), as a zone named `name`.
fn band(name: &str) -> Value {
    json!({ (name): {"polygon": [[0.0, 0.35], [1.0, 0.35], [1.0, 0.8], [0.0, 0.8]], "classes": ["person"], "minFrames": 2} })
}

/// The `event` inferences of a message: (name, properties).
fn events(msg: &Value) -> Vec<(String, BTreeMap<String, String>)> {
    msg["inferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let e = i.get("event")?;
            let props = serde_json::from_value(e["properties"].clone()).ok()?;
            Some((e["name"].as_str()?.to_string(), props))
        })
        .collect()
}

/// Zone names each source's events and counts mention, by source.
fn zones_by_source<'a>(
    msgs: impl Iterator<Item = &'a Value>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in msgs {
        let source = m["source"].as_str().unwrap_or_default().to_string();
        let set = by.entry(source).or_default();
        for (_, p) in events(m) {
            set.extend(p.get("zone").cloned());
        }
    }
    by
}

fn write(dir: &std::path::Path, name: &str, v: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, v.to_string()).expect("write zones");
    p.to_string_lossy().to_string()
}

/// Three sources on one command line, all the sample clip: `a` and `b` have their own
/// zone file, `c` none. Each gets zone events for its own zones only; `c` runs the shared
/// file; nobody else does (a source's own set is not merged with the shared one).
#[test]
fn each_source_gets_events_for_its_own_zones_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = write(
        dir.path(),
        "shared.json",
        &json!({"zones": band("zoneShared")}),
    );
    let a = write(dir.path(), "a.json", &json!({"zones": band("zoneOfA")}));
    let b = write(dir.path(), "b.json", &json!({"zones": band("zoneOfB")}));
    let v = sample_video().to_string_lossy().to_string();
    let msgs = json_lines(bin().args([
        "run",
        "--no-module",
        "--metrics-addr",
        "off",
        "--output-mode",
        "events",
        "--model",
        &model("ssdlite-person").to_string_lossy(),
        "--source",
        &format!("a={v}"),
        "--source",
        &format!("b={v}"),
        "--source",
        &format!("c={v}"),
        "--zones",
        &shared,
        "--zones",
        &format!("a={a}"),
        "--zones",
        &format!("b={b}"),
    ]));
    let by = zones_by_source(msgs.iter());
    println!("zones seen per source: {by:?}");
    let want = |z: &str| BTreeSet::from([z.to_string()]);
    assert_eq!(by.get("a"), Some(&want("zoneOfA")), "{by:?}");
    assert_eq!(by.get("b"), Some(&want("zoneOfB")), "{by:?}");
    assert_eq!(by.get("c"), Some(&want("zoneShared")), "{by:?}");
    for src in ["a", "b", "c"] {
        let entered = msgs
            .iter()
            .filter(|m| m["source"] == src)
            .flat_map(events)
            .filter(|(n, _)| n == "zoneEntered")
            .count();
        assert!(entered > 0, "{src}: no zoneEntered");
    }
}

#[test]
fn zones_for_an_unknown_source_or_a_bad_zone_are_clear_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = write(dir.path(), "ok.json", &json!({"zones": band("z")}));
    let bad = write(
        dir.path(),
        "bad.json",
        &json!({"zones": {"door": {"polygon": [[0.1, 0.1], [1.5, 0.1], [0.2, 0.3]]}}}),
    );
    let base = [
        "run",
        "--no-module",
        "--metrics-addr",
        "off",
        "--source",
        "a=test",
        "--source",
        "b=test",
    ];
    let out = run(bin().args(base).args(["--zones", &format!("gate={ok}")]));
    let err = assert_clean_failure(&out, &["no source named 'gate'", "a, b"]);
    println!("{err}");
    let out = run(bin().args(base).args(["--zones", &format!("b={bad}")]));
    assert_clean_failure(
        &out,
        &["--zones b=", "zones.door.polygon[1]", "within 0..1"],
    );
}

fn source_of(topic: &str) -> String {
    common::edgehub::topic_property(topic, "source").unwrap_or_default()
}

/// One event message as the hub got it: (arrival, source, track id, event names).
struct Ev {
    at: Instant,
    source: String,
    track: String,
    names: Vec<String>,
    body: Value,
}

fn track_events(h: &Harness) -> Vec<Ev> {
    let st = h.hub.state.lock().expect("lock");
    st.telemetry
        .iter()
        .filter(|(t, _, _)| t.contains("%24.on=events&"))
        .filter_map(|(t, b, at)| {
            Some(Ev {
                at: *at,
                source: source_of(t),
                track: b["inferences"][0]["entity"]["id"].as_str()?.to_string(),
                names: events(b).into_iter().map(|(n, _)| n).collect(),
                body: b.clone(),
            })
        })
        .collect()
}

/// Tracks of `source` confirmed before `t` and not ended before it.
fn live_at(evs: &[Ev], source: &str, t: Instant) -> BTreeSet<String> {
    let mut live = BTreeSet::new();
    for e in evs.iter().filter(|e| e.source == source && e.at < t) {
        if e.names.iter().any(|n| n == "new") {
            live.insert(e.track.clone());
        }
        if e.names.iter().any(|n| n == "end") {
            live.remove(&e.track);
        }
    }
    live
}

/// Module mode through the twin: two sources with their own zones; a patch that changes
/// `b`'s zones applies live: `a`'s tracks (and `b`'s) go on with the same ids, with no
/// end/new churn at the patch, and `b` then reports its new zone. A bad zone in one
/// source rejects the patch, naming source and zone.
#[test]
fn changing_one_sources_zones_through_the_twin_leaves_the_other_alone() {
    let v = sample_video().to_string_lossy().to_string();
    let desired = json!({
        "model": {"name": "ssdlite-person", "backend": "ort"},
        "output": {"mode": "events", "heartbeatSecs": 1},
        "zones": band("zoneShared"),
        "sources": {"a": {"uri": v, "zones": band("zoneOfA")}, "b": {"uri": v, "zones": band("zoneOfB")}}
    });
    let h = Harness::start(desired, &[], &["--output-mode", "events"]);
    let wait_for = |what: &str, secs: u64, pred: &dyn Fn(&[Ev]) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !pred(&track_events(&h)) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let zone_events = |evs: &[Ev], src: &str, zone: &str| {
        evs.iter()
            .filter(|e| e.source == src)
            .flat_map(|e| events(&e.body))
            .filter(|(_, p)| p.get("zone").map(String::as_str) == Some(zone))
            .count()
    };
    wait_for(
        "zone events from both sources, and tracks live on both",
        90,
        &|evs| {
            let now = Instant::now();
            zone_events(evs, "a", "zoneOfA") > 0
                && zone_events(evs, "b", "zoneOfB") > 0
                && live_at(evs, "a", now).len() >= 2
                && live_at(evs, "b", now).len() >= 2
        },
    );
    // b's zone moves: a new name, so its events say which set runs.
    let patch = json!({"sources": {"b": {"zones": {"zoneOfB": null, "zoneOfB2": band("zoneOfB2")["zoneOfB2"]}}}});
    let before = Instant::now();
    let version = h.hub.patch_desired(patch);
    h.hub
        .wait(Duration::from_secs(20), "b's zones applied", |s| {
            s.reported["appliedVersion"] == version
        });
    let applied = Instant::now();
    // Ends a restart would send come at once; heartbeats of a track that lives on keep
    // coming after.
    let settled = applied + Duration::from_secs(1);
    let (live_a, live_b) = {
        let evs = track_events(&h);
        (live_at(&evs, "a", before), live_at(&evs, "b", before))
    };
    // Heartbeats every second: a track that lived through the patch says so within a few.
    wait_for("b's new zone, and heartbeats after the patch", 60, &|evs| {
        zone_events(evs, "b", "zoneOfB2") > 0
            && evs.iter().any(|e| {
                e.at > applied
                    && e.source == "a"
                    && live_a.contains(&e.track)
                    && !e.names.contains(&"end".to_string())
            })
    });
    std::thread::sleep(Duration::from_secs(3));
    let evs = track_events(&h);
    for (src, live) in [("a", &live_a), ("b", &live_b)] {
        let after: Vec<&Ev> = evs
            .iter()
            .filter(|e| e.source == src && e.at > before && live.contains(&e.track))
            .collect();
        let survived: BTreeSet<&str> = after
            .iter()
            .filter(|e| e.at > settled && !e.names.iter().any(|n| n == "end"))
            .map(|e| e.track.as_str())
            .collect();
        // A restart would end every live track at once (and their ids never come back).
        let ended_at_patch = after
            .iter()
            .filter(|e| {
                e.at <= applied + Duration::from_millis(500) && e.names.iter().any(|n| n == "end")
            })
            .count();
        println!(
            "{src}: {} live at the patch, {} went on after it, {ended_at_patch} ended at it",
            live.len(),
            survived.len()
        );
        assert!(
            !survived.is_empty(),
            "{src}: no track lived through the patch: {live:?}"
        );
        assert!(
            ended_at_patch < live.len(),
            "{src}: every live track ended at the patch"
        );
    }
    // a never ran b's zones, nor the shared ones.
    let by = zones_by_source(evs.iter().map(|e| &e.body));
    assert_eq!(by["a"], BTreeSet::from(["zoneOfA".to_string()]), "{by:?}");
    assert!(
        !by["b"].contains("zoneShared") && by["b"].contains("zoneOfB2"),
        "{by:?}"
    );
    let late_b_old = evs
        .iter()
        .filter(|e| e.source == "b" && e.at > applied + Duration::from_secs(1))
        .flat_map(|e| events(&e.body))
        .filter(|(n, p)| n == "zoneEntered" && p.get("zone").map(String::as_str) == Some("zoneOfB"))
        .count();
    assert_eq!(
        late_b_old, 0,
        "b still enters its removed zone after the patch"
    );

    let bad = h.hub.patch_desired(
        json!({"sources": {"a": {"zones": {"door": {"polygon": [[0.1, 0.1], [2.0, 0.1], [0.3, 0.4]]}}}}}),
    );
    h.hub.wait(
        Duration::from_secs(20),
        "bad per-source zone rejected",
        |s| {
            s.reported["lastDesired"]["version"] == bad
                && s.reported["lastDesired"]["status"] == "rejected"
        },
    );
    let reason = h.hub.reported()["lastDesired"]["reason"].to_string();
    assert!(
        reason.contains("sources.a.zones.door.polygon[1]"),
        "{reason}"
    );
}

/// Module mode: `--zones NAME=FILE` is that source's own set in the base config the twin
/// overrides, reported as `config.sources.<name>.zones`; an unknown NAME stops the start.
#[test]
fn command_line_zones_per_source_are_the_module_base() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(dir.path(), "a.json", &json!({"zones": band("zoneOfA")}));
    let v = sample_video().to_string_lossy().to_string();
    let (sa, sb, za) = (format!("a={v}"), format!("b={v}"), format!("a={a}"));
    let h = Harness::start(
        json!({"model": {"name": "ssdlite-person", "backend": "ort"}}),
        &[],
        &["--source", &sa, "--source", &sb, "--zones", &za],
    );
    h.hub.wait(Duration::from_secs(60), "config reported", |s| {
        s.reported["config"]["sources"]["b"].is_object()
    });
    let c = h.hub.reported()["config"]["sources"].clone();
    assert!(c["a"]["zones"]["zoneOfA"]["polygon"].is_array(), "{c}");
    assert!(c["b"].get("zones").is_none(), "{c}");
    let out = run(bin()
        .args(["run", "--no-module", "--metrics-addr", "off"])
        .args(["--source", &sa, "--zones", &format!("b={a}")]));
    assert_clean_failure(&out, &["no source named 'b'", "a, default"]);
}
