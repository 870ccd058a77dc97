use super::*;
use serde_json::json;

fn q() -> ControlQueue {
    ControlQueue::new(5, 1000)
}

fn stats(n: u64) -> ControlMessage {
    ControlMessage::new(
        ControlKind::Stats,
        format!("rep/?$rid={n}"),
        json!({"stats": {"frames": n}}).to_string().into_bytes(),
    )
}

fn reported(rid: u64, v: serde_json::Value) -> ControlMessage {
    ControlMessage::new(
        ControlKind::Reported,
        format!("rep/?$rid={rid}"),
        v.to_string().into_bytes(),
    )
}

fn body(m: &ControlMessage) -> serde_json::Value {
    serde_json::from_slice(&m.msg.payload).unwrap()
}

#[test]
fn edgehub_down_for_1000_stats_intervals_keeps_one_stats_message() {
    let mut q = q();
    for n in 0..1000 {
        q.push(stats(n)).unwrap();
    }
    assert_eq!(q.len(), 1);
    assert_eq!(q.stats().coalesced, 999);
    assert_eq!(q.stats().dropped, 0);
    assert_eq!(body(&q.pop().unwrap()), json!({"stats": {"frames": 999}}));
}

#[test]
fn reported_patches_merge_newest_values_winning() {
    let mut q = q();
    q.push(reported(
        1,
        json!({"lastDesired": {"version": 1, "status": "rejected", "reason": "bad"}}),
    ))
    .unwrap();
    q.push(reported(2, json!({"model": {"status": "loading"}})))
        .unwrap();
    q.push(reported(3, json!({"lastDesired": {"version": 2, "status": "applied", "reason": null}, "model": {"status": "ready"}}))).unwrap();
    assert_eq!(q.len(), 1);
    let m = q.pop().unwrap();
    assert_eq!(
        m.msg.topic, "rep/?$rid=3",
        "the merged patch carries the newest request id"
    );
    assert_eq!(
        body(&m),
        json!({"lastDesired": {"version": 2, "status": "applied", "reason": null}, "model": {"status": "ready"}})
    );
}

#[test]
fn a_merged_patch_goes_after_a_stats_report_queued_in_between() {
    // stats in the full report must not be overwritten by an older stats-only report.
    let mut q = q();
    q.push(reported(1, json!({"config": {}}))).unwrap();
    q.push(stats(5)).unwrap();
    q.push(reported(2, json!({"stats": {"frames": 6}})))
        .unwrap();
    let order: Vec<ControlKind> = std::iter::from_fn(|| q.pop()).map(|m| m.kind).collect();
    assert_eq!(order, vec![ControlKind::Stats, ControlKind::Reported]);
}

#[test]
fn patches_that_cannot_merge_exactly_stay_apart() {
    let mut q = q();
    q.push(reported(1, json!({"model": null}))).unwrap();
    q.push(reported(2, json!({"model": {"status": "ready"}})))
        .unwrap();
    assert_eq!(
        q.len(),
        2,
        "null then object is a replace, which one patch cannot say"
    );
}

#[test]
fn gets_and_method_responses_are_kept_in_order_and_bounded() {
    let mut q = q();
    for n in 0..8u8 {
        let kind = if n % 2 == 0 {
            ControlKind::TwinGet
        } else {
            ControlKind::MethodResponse
        };
        q.push(ControlMessage::new(kind, format!("t{n}"), vec![]))
            .unwrap();
    }
    assert_eq!(q.len(), 5);
    assert_eq!(q.stats().dropped, 3);
    let topics: Vec<String> = std::iter::from_fn(|| q.pop())
        .map(|m| m.msg.topic)
        .collect();
    assert_eq!(topics, vec!["t3", "t4", "t5", "t6", "t7"]);
}

#[test]
fn oversized_and_malformed_control_messages_are_refused_at_enqueue() {
    let mut q = q();
    let big = ControlMessage::new(ControlKind::MethodResponse, "m", vec![b' '; 1001]);
    assert!(matches!(
        q.push(big),
        Err(MqttError::TooLarge {
            size: 1001,
            limit: 1000
        })
    ));
    let not_object = ControlMessage::new(ControlKind::Reported, "r", b"[1]".to_vec());
    assert!(matches!(q.push(not_object), Err(MqttError::BadPatch(_))));
    let garbage = ControlMessage::new(ControlKind::Reported, "r", b"{\"a\":".to_vec());
    assert!(matches!(q.push(garbage), Err(MqttError::BadPatch(_))));
    let wildcard = ControlMessage::new(ControlKind::MethodResponse, "res/200/?$rid=#", vec![]);
    assert!(matches!(q.push(wildcard), Err(MqttError::BadTopic(_))));
    assert!(
        q.is_empty(),
        "nothing refused waits to block the connection"
    );
    assert_eq!(q.stats().rejected, 4);
}

#[test]
fn a_merge_that_would_exceed_the_limit_keeps_both() {
    let mut q = ControlQueue::new(5, 60);
    q.push(reported(1, json!({"a": "x".repeat(25)}))).unwrap();
    q.push(reported(2, json!({"b": "y".repeat(25)}))).unwrap();
    assert_eq!(q.len(), 2);
}

#[test]
fn a_requeued_stats_report_gives_way_to_a_newer_one() {
    let mut q = q();
    let old = stats(1);
    q.push(stats(2)).unwrap();
    q.requeue_front(vec![
        old,
        ControlMessage::new(ControlKind::TwinGet, "get", vec![]),
    ]);
    let topics: Vec<String> = std::iter::from_fn(|| q.pop())
        .map(|m| m.msg.topic)
        .collect();
    assert_eq!(topics, vec!["get", "rep/?$rid=2"]);
}
