//! The MQTT session against a real mosquitto: what a broker outage leaves in the outbox,
//! and what arrives after it. The pure parts are unit-tested in src/mqtt/.

mod common;

use std::time::Duration;

use common::*;
use edgelens::mqtt::{ControlKind, MqttError, Session, SessionConfig, SessionEvent};
use serde_json::{json, Value};

fn wait_event(
    rx: &crossbeam_channel::Receiver<SessionEvent>,
    want: fn(&SessionEvent) -> bool,
) -> SessionEvent {
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(ev) if want(&ev) => return ev,
            Ok(_) => {}
            Err(_) => panic!("no such session event within 20 s"),
        }
    }
}

#[test]
fn an_outage_coalesces_control_and_delivers_telemetry_in_order() {
    let mut broker = Mosquitto::start();
    let mut config = SessionConfig::plain("127.0.0.1", broker.port, "session-under-test");
    // The reconnect waits this long: time for the test to restart the broker and subscribe.
    config.backoff_start = Duration::from_secs(4);
    config.max_backoff = Duration::from_secs(4);
    let (tx, rx) = crossbeam_channel::unbounded();
    let session = Session::start(config, Some(tx)).expect("session");
    wait_event(&rx, |e| matches!(e, SessionEvent::Connected));

    broker.stop();
    wait_event(&rx, |e| matches!(e, SessionEvent::Disconnected(_)));
    // EdgeHub down for 1000 stats intervals, a few reported patches, two GETs, telemetry.
    for n in 0..1000 {
        let body = json!({"stats": {"n": n}}).to_string().into_bytes();
        session
            .publish_control(ControlKind::Stats, "ctl/reported".into(), body)
            .expect("stats");
    }
    for (k, v) in [("a", 1), ("b", 2), ("a", 3)] {
        let body = json!({ k: v }).to_string().into_bytes();
        session
            .publish_control(ControlKind::Reported, "ctl/reported".into(), body)
            .expect("reported");
    }
    for rid in ["1", "2"] {
        session
            .publish_control(ControlKind::TwinGet, format!("ctl/get/{rid}"), Vec::new())
            .expect("get");
    }
    for n in 0..200u32 {
        session
            .publish("tel".into(), n.to_be_bytes().to_vec())
            .expect("telemetry");
    }
    // Refused at once instead of blocking the connection when it comes back.
    let big = vec![b' '; edgelens::defaults::MAX_MESSAGE_BYTES + 1];
    let e = session
        .publish_control(ControlKind::MethodResponse, "ctl/res".into(), big)
        .unwrap_err();
    assert!(matches!(e, MqttError::TooLarge { .. }), "{e}");
    let s = session.stats();
    assert_eq!(
        s.outbox.control.queued, 4,
        "1 stats, 1 merged patch, 2 GETs: {s:?}"
    );
    assert_eq!(s.outbox.queued, 200);

    broker.restart();
    let collector = Collector::subscribe(broker.port, "#");
    assert_eq!(
        session.stats().connects,
        1,
        "the session reconnected before the collector subscribed; raise backoff_start"
    );
    assert_eq!(collector.wait_for(204, Duration::from_secs(30)), 204);
    assert_eq!(session.flush(Duration::from_secs(10)), 0);
    std::thread::sleep(Duration::from_millis(300)); // nothing more may arrive
    let got = collector.messages.lock().expect("lock").clone();
    assert_eq!(got.len(), 204, "duplicates or extras: {}", got.len());

    let control: Vec<(String, Value)> = got[..4]
        .iter()
        .map(|(t, p)| (t.clone(), serde_json::from_slice(p).unwrap_or(Value::Null)))
        .collect();
    let stats: Vec<&Value> = control
        .iter()
        .filter(|(_, v)| v.get("stats").is_some())
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        stats,
        vec![&json!({"stats": {"n": 999}})],
        "only the newest stats: {control:?}"
    );
    assert!(
        control.iter().any(|(_, v)| v == &json!({"a": 3, "b": 2})),
        "{control:?}"
    );
    let gets: Vec<&str> = control
        .iter()
        .filter(|(t, _)| t.starts_with("ctl/get/"))
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(gets, vec!["ctl/get/1", "ctl/get/2"]);
    let telemetry: Vec<u32> = got[4..]
        .iter()
        .map(|(t, p)| {
            assert_eq!(t, "tel", "control must go before telemetry");
            u32::from_be_bytes(p[..4].try_into().expect("4 bytes"))
        })
        .collect();
    assert_eq!(telemetry, (0..200).collect::<Vec<_>>());
    let s = session.stats().outbox;
    assert_eq!(
        (s.acked, s.control_acked, s.dropped, s.rejected),
        (200, 4, 0, 0)
    );
    assert_eq!((s.control.coalesced, s.control.rejected), (1001, 1));
    session.stop();
}
