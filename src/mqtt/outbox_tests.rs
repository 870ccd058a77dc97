use super::*;
use crate::mqtt::control_queue::ControlKind;

fn cfg(messages: usize, bytes: usize) -> OutboxConfig {
    OutboxConfig {
        queue: QueueLimits { messages, bytes },
        max_message_bytes: 1000,
        max_inflight: 4,
        control_messages: 10,
    }
}

/// A message of exactly `size` bytes (topic "t" + payload).
fn msg(n: u8, size: usize) -> Message {
    Message::new("t", vec![n; size - 1])
}

fn ids(o: &mut Outbox) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(m) = o.take_next() {
        out.push(m.payload[0]);
        let pkid = out.len() as u16;
        assert!(o.sent(pkid));
        o.ack(pkid).unwrap();
    }
    out
}

#[test]
fn messages_leave_in_the_order_they_came() {
    let mut o = Outbox::new(cfg(100, 10_000));
    for n in 0..10 {
        o.push(msg(n, 10)).unwrap();
    }
    assert_eq!(ids(&mut o), (0..10).collect::<Vec<_>>());
    let s = o.stats();
    assert_eq!((s.acked, s.queued, s.inflight, s.dropped), (10, 0, 0, 0));
}

#[test]
fn count_bound_drops_the_oldest_and_counts() {
    let mut o = Outbox::new(cfg(3, 10_000));
    for n in 0..5 {
        o.push(msg(n, 10)).unwrap();
    }
    let s = o.stats();
    assert_eq!((s.queued, s.dropped, s.dropped_bytes), (3, 2, 20));
    assert_eq!(ids(&mut o), vec![2, 3, 4]);
}

#[test]
fn byte_bound_drops_the_oldest_and_counts() {
    let mut o = Outbox::new(cfg(100, 100));
    for n in 0..4 {
        o.push(msg(n, 30)).unwrap(); // 120 bytes offered, 100 allowed
    }
    let s = o.stats();
    assert_eq!((s.queued, s.queued_bytes), (3, 90));
    assert_eq!((s.dropped, s.dropped_bytes), (1, 30));
    // One big message pushes out as many old ones as it needs.
    o.push(msg(9, 80)).unwrap();
    let s = o.stats();
    assert_eq!((s.queued, s.queued_bytes, s.dropped), (1, 80, 4));
    assert_eq!(ids(&mut o), vec![9]);
}

#[test]
fn a_message_larger_than_the_byte_bound_is_refused_and_counted() {
    let mut o = Outbox::new(cfg(100, 50));
    o.push(msg(1, 40)).unwrap();
    let e = o.push(msg(2, 51)).unwrap_err();
    assert!(
        matches!(
            e,
            MqttError::LargerThanQueue {
                size: 51,
                limit: 50
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("--queue-mb"), "{e}");
    let e = o.push(Message::new("t", vec![0; 1001])).unwrap_err();
    assert!(
        matches!(
            e,
            MqttError::TooLarge {
                size: 1001,
                limit: 1000
            }
        ),
        "{e}"
    );
    let s = o.stats();
    // What was queued before stays; nothing was dropped for the refused ones.
    assert_eq!((s.rejected, s.queued, s.dropped), (2, 1, 0));
}

#[test]
fn wildcard_topics_are_refused_at_enqueue_not_at_send() {
    let mut o = Outbox::new(cfg(100, 10_000));
    for t in ["a/+/b", "a/#", "", "a\0b"] {
        assert!(
            matches!(
                o.push(Message::new(t, vec![1])),
                Err(MqttError::BadTopic(_))
            ),
            "{t:?}"
        );
    }
    assert_eq!(o.stats().rejected, 4);
    assert_eq!(o.pending(), 0);
}

#[test]
fn unacknowledged_messages_are_requeued_in_their_original_order() {
    let mut o = Outbox::new(cfg(100, 10_000));
    for n in 0..6 {
        o.push(msg(n, 10)).unwrap();
    }
    // 0..4 go in flight (window of 4); 1 is acknowledged, 3 never got a packet id.
    for pkid in 1..=4u16 {
        assert!(o.take_next().is_some());
        if pkid < 4 {
            assert!(o.sent(pkid));
        }
    }
    assert!(o.take_next().is_none(), "the in-flight window is full");
    o.ack(2).unwrap(); // message 1
    assert_eq!(o.requeue(), 3);
    assert_eq!(o.stats().inflight, 0);
    assert_eq!(o.stats().queued_bytes, 50);
    assert_eq!(ids(&mut o), vec![0, 2, 3, 4, 5]);
}

#[test]
fn requeue_respects_the_bounds_dropping_the_oldest() {
    let mut o = Outbox::new(cfg(3, 10_000));
    for n in 0..3 {
        o.push(msg(n, 10)).unwrap();
    }
    o.take_next().unwrap(); // 0 in flight
    o.push(msg(3, 10)).unwrap(); // queue: 1 2 3
    o.requeue(); // 0 1 2 3 -> over the bound by one: 0 goes
    assert_eq!(o.stats().dropped, 1);
    assert_eq!(ids(&mut o), vec![1, 2, 3]);
}

#[test]
fn ack_of_an_unknown_packet_id_changes_nothing() {
    let mut o = Outbox::new(cfg(100, 10_000));
    o.push(msg(1, 10)).unwrap();
    o.take_next().unwrap();
    assert!(o.sent(7));
    assert_eq!(o.ack(8), Err(MqttError::UnknownAck(8)));
    assert_eq!(o.stats().inflight, 1);
    assert_eq!(o.stats().acked, 0);
    o.ack(7).unwrap();
    assert_eq!(
        o.ack(7),
        Err(MqttError::UnknownAck(7)),
        "a second ack is unknown too"
    );
    assert!(!o.sent(9), "no publish waits for a packet id");
}

#[test]
fn a_refused_send_goes_back_to_the_front() {
    let mut o = Outbox::new(cfg(100, 10_000));
    o.push(msg(1, 10)).unwrap();
    o.push(msg(2, 10)).unwrap();
    assert_eq!(o.take_next().unwrap().payload[0], 1);
    o.return_unsent();
    assert_eq!(o.stats().inflight, 0);
    assert_eq!(ids(&mut o), vec![1, 2]);
}

#[test]
fn control_goes_first_and_is_requeued_to_its_own_queue() {
    let mut o = Outbox::new(cfg(100, 10_000));
    o.push(msg(1, 10)).unwrap();
    o.push_control(ControlMessage::new(ControlKind::TwinGet, "get", vec![]))
        .unwrap();
    assert_eq!(o.take_next().unwrap().topic, "get");
    assert_eq!(o.take_next().unwrap().topic, "t");
    assert!(o.sent(1) && o.sent(2));
    o.requeue();
    assert_eq!(o.stats().control.queued, 1);
    assert_eq!(o.stats().queued, 1);
    assert_eq!(o.take_next().unwrap().topic, "get");
    assert!(o.sent(1));
    o.ack(1).unwrap();
    assert_eq!((o.stats().control_acked, o.stats().acked), (1, 0));
}
