//! Consumers: prefetch (per consumer, per channel, unlimited), round robin, no_ack, exclusive
//! consume (403), server tags, cancel both ways, ack/nack/reject with `multiple` and `requeue`,
//! the redelivered flag and redelivery order, unknown delivery tags (406), basic.get, recover,
//! and what closing a channel or losing a connection does to unacknowledged messages.

mod support;

use amq_protocol::protocol::{AMQPClass, basic, queue};
use amq_protocol::types::FieldTable;
use support::*;

fn texts(ds: &[Delivery]) -> Vec<&str> {
    ds.iter().map(Delivery::text).collect()
}

fn publish_n(h: &mut Harness, c: &mut Client, q: &str, n: usize) {
    for i in 1..=n {
        c.publish(h, 1, "", q, &format!("m{i}"));
    }
}

#[test]
fn prefetch_one_delivers_one_at_a_time() {
    let mut h = Harness::new();
    let mut p = h.client("/");
    p.declare_queue(&mut h, 1, "q", FieldTable::default());
    publish_n(&mut h, &mut p, "q", 3);
    let mut c = h.client("/");
    c.qos(&mut h, 1, 1, false);
    let tag = c.consume(&mut h, 1, "q", "", false);
    assert!(
        tag.starts_with("amq.ctag-") && tag.len() == "amq.ctag-".len() + 22,
        "{tag}"
    );
    let d = c.expect_delivery(&mut h);
    assert_eq!((d.text(), d.delivery_tag, d.redelivered), ("m1", 1, false));
    assert_eq!(d.consumer_tag, tag);
    c.expect_nothing(&mut h);
    let q = h.broker.queue("/", "q").unwrap();
    assert_eq!((q.messages_ready, q.messages_unacknowledged), (2, 1));
    c.ack(&mut h, 1, 1, false);
    let d = c.expect_delivery(&mut h);
    assert_eq!((d.text(), d.delivery_tag), ("m2", 2));
    c.expect_nothing(&mut h);
}

#[test]
fn prefetch_zero_is_unlimited_and_no_ack_needs_no_ack() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    publish_n(&mut h, &mut c, "q", 5);
    c.qos(&mut h, 1, 0, false);
    c.consume(&mut h, 1, "q", "manual", false);
    assert_eq!(
        texts(&c.deliveries(&mut h, 5)),
        ["m1", "m2", "m3", "m4", "m5"]
    );
    assert_eq!(h.broker.queue("/", "q").unwrap().messages_unacknowledged, 5);

    c.declare_queue(&mut h, 1, "auto", FieldTable::default());
    c.consume(&mut h, 1, "auto", "auto-tag", true);
    publish_n(&mut h, &mut c, "auto", 2);
    let ds = c.deliveries(&mut h, 2);
    assert_eq!(texts(&ds), ["m1", "m2"]);
    assert_eq!(
        h.broker.queue("/", "auto").unwrap().messages_unacknowledged,
        0
    );
    // A no_ack delivery tag is not outstanding.
    c.ack(&mut h, 1, ds[0].delivery_tag, false);
    c.expect_channel_close(
        &mut h,
        1,
        406,
        &format!(
            "PRECONDITION_FAILED - unknown delivery tag {}",
            ds[0].delivery_tag
        ),
        (60, 80),
    );
}

#[test]
fn prefetch_is_per_consumer_and_global_is_per_channel() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "a", FieldTable::default());
    c.declare_queue(&mut h, 1, "b", FieldTable::default());
    publish_n(&mut h, &mut c, "a", 3);
    publish_n(&mut h, &mut c, "b", 3);
    c.qos(&mut h, 1, 2, false);
    // Two each: the prefetch belongs to each consumer.
    c.consume(&mut h, 1, "a", "ca", false);
    let ds = c.deliveries(&mut h, 2);
    assert!(ds.iter().all(|d| d.consumer_tag == "ca"));
    c.expect_nothing(&mut h);
    c.consume(&mut h, 1, "b", "cb", false);
    let ds = c.deliveries(&mut h, 2);
    assert!(ds.iter().all(|d| d.consumer_tag == "cb"));
    c.expect_nothing(&mut h);

    // A global limit of 1 on another channel: one message across both consumers.
    c.open_channel(&mut h, 2);
    c.declare_queue(&mut h, 2, "g1", FieldTable::default());
    c.declare_queue(&mut h, 2, "g2", FieldTable::default());
    c.qos(&mut h, 2, 1, true);
    c.consume(&mut h, 2, "g1", "c1", false);
    c.consume(&mut h, 2, "g2", "c2", false);
    c.publish(&mut h, 1, "", "g1", "x1");
    c.publish(&mut h, 1, "", "g2", "x2");
    let first = c.expect_delivery(&mut h);
    assert_eq!((first.channel, first.text()), (2, "x1"));
    c.expect_nothing(&mut h);
    c.ack(&mut h, 2, first.delivery_tag, false);
    let second = c.expect_delivery(&mut h);
    assert_eq!(second.text(), "x2");
}

#[test]
fn competing_consumers_share_round_robin() {
    let mut h = Harness::new();
    let mut p = h.client("/");
    p.declare_queue(&mut h, 1, "q", FieldTable::default());
    let mut a = h.client("/");
    let mut b = h.client("/");
    a.consume(&mut h, 1, "q", "a", true);
    b.consume(&mut h, 1, "q", "b", true);
    publish_n(&mut h, &mut p, "q", 4);
    assert_eq!(texts(&a.deliveries(&mut h, 2)), ["m1", "m3"]);
    assert_eq!(texts(&b.deliveries(&mut h, 2)), ["m2", "m4"]);
}

#[test]
fn requeued_messages_come_back_redelivered_in_their_original_order() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    publish_n(&mut h, &mut c, "q", 4);
    c.qos(&mut h, 1, 3, false);
    c.consume(&mut h, 1, "q", "t", false);
    let ds = c.deliveries(&mut h, 3);
    assert_eq!(texts(&ds), ["m1", "m2", "m3"]);
    // With room, a requeued message is redelivered at once, flagged.
    c.nack(&mut h, 1, 2, false, true);
    let d = c.expect_delivery(&mut h);
    assert_eq!((d.text(), d.redelivered, d.delivery_tag), ("m2", true, 4));
    // Without a consumer, requeued messages go back ahead of m4, in publication order,
    // whatever order they were requeued in.
    c.send(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: "t".into(),
            nowait: false,
        })),
    );
    c.next_method(&mut h);
    c.reject(&mut h, 1, 3, true);
    c.reject(&mut h, 1, 4, true);
    c.nack(&mut h, 1, 1, false, true);
    let waiting: Vec<(String, bool)> = h
        .broker
        .messages("/", "q")
        .into_iter()
        .map(|m| (String::from_utf8(m.body).unwrap(), m.redelivered))
        .collect();
    assert_eq!(
        waiting,
        [
            ("m1".to_owned(), true),
            ("m2".to_owned(), true),
            ("m3".to_owned(), true),
            ("m4".to_owned(), false)
        ]
    );
    c.consume(&mut h, 1, "q", "t2", true);
    let again = c.deliveries(&mut h, 4);
    assert_eq!(texts(&again), ["m1", "m2", "m3", "m4"]);
    assert_eq!(
        again.iter().map(|d| d.delivery_tag).collect::<Vec<_>>(),
        [5, 6, 7, 8],
        "new delivery tags"
    );
}

#[test]
fn multiple_acks_and_nacks() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    publish_n(&mut h, &mut c, "q", 5);
    c.consume(&mut h, 1, "q", "t", false);
    c.deliveries(&mut h, 5);
    c.ack(&mut h, 1, 2, true);
    assert_eq!(h.broker.queue("/", "q").unwrap().messages_unacknowledged, 3);
    c.nack(&mut h, 1, 4, true, true);
    let ds = c.deliveries(&mut h, 2);
    assert_eq!(texts(&ds), ["m3", "m4"]);
    // ack 0 with multiple: everything outstanding.
    c.ack(&mut h, 1, 0, true);
    assert_eq!(h.broker.queue("/", "q").unwrap().messages_unacknowledged, 0);
    // A multiple ack must name an outstanding tag.
    c.ack(&mut h, 1, 3, true);
    c.expect_channel_close(
        &mut h,
        1,
        406,
        "PRECONDITION_FAILED - unknown delivery tag 3",
        (60, 80),
    );
}

#[test]
fn double_ack_and_unknown_tags_close_the_channel() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    c.publish(&mut h, 1, "", "q", "m");
    c.consume(&mut h, 1, "q", "t", false);
    let d = c.expect_delivery(&mut h);
    c.reject(&mut h, 1, d.delivery_tag, false);
    // NuroPb 0.1.8's double reject on a decode failure (NUROPB-WIRE §4.1).
    c.reject(&mut h, 1, d.delivery_tag, false);
    c.expect_channel_close(
        &mut h,
        1,
        406,
        "PRECONDITION_FAILED - unknown delivery tag 1",
        (60, 90),
    );
    c.open_channel(&mut h, 2);
    c.nack(&mut h, 2, 7, false, false);
    c.expect_channel_close(
        &mut h,
        2,
        406,
        "PRECONDITION_FAILED - unknown delivery tag 7",
        (60, 120),
    );
    c.open_channel(&mut h, 3);
    c.ack(&mut h, 3, 0, false);
    c.expect_channel_close(
        &mut h,
        3,
        406,
        "PRECONDITION_FAILED - unknown delivery tag 0",
        (60, 80),
    );
}

#[test]
fn exclusive_consume_is_refused_as_in_the_single_instance_capture() {
    let vhost = "nuropb-cap-single_instance";
    let q = "nuropb-research-svc-sameinstance000000000000000000f6-rq";
    let mut h = Harness::new();
    let mut first = h.client(vhost);
    first.declare_queue(&mut h, 1, q, FieldTable::default());
    first.send(
        &mut h,
        1,
        consume(q, "ctag1.ce61a931270c4cf0bfe04577787e981a", true, true),
    );
    first.expect(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
            consumer_tag: "ctag1.ce61a931270c4cf0bfe04577787e981a".into(),
        })),
    );
    let mut second = h.client(vhost);
    second.declare_queue(&mut h, 1, q, FieldTable::default());
    second.send(
        &mut h,
        1,
        consume(q, "ctag1.7446c88ecab74fabbaf4f2439aba43c3", true, true),
    );
    second.expect_channel_close(
        &mut h,
        1,
        403,
        "ACCESS_REFUSED - queue 'nuropb-research-svc-sameinstance000000000000000000f6-rq' in \
         vhost 'nuropb-cap-single_instance' in exclusive use",
        (60, 20),
    );
    // A non-exclusive consumer is refused too while the exclusive one holds the queue.
    second.open_channel(&mut h, 2);
    second.send(&mut h, 2, consume(q, "", true, false));
    let (_, m) = second.next_method(&mut h);
    assert!(matches!(m, AMQPClass::Channel(_)), "{m:?}");
    // And an exclusive consumer is refused while any consumer exists.
    let mut third = h.client(vhost);
    third.declare_queue(&mut h, 1, "shared", FieldTable::default());
    third.consume(&mut h, 1, "shared", "plain", true);
    let mut fourth = h.client(vhost);
    fourth.send(&mut h, 1, consume("shared", "", true, true));
    fourth.expect_channel_close(
        &mut h,
        1,
        403,
        &format!("ACCESS_REFUSED - queue 'shared' in vhost '{vhost}' in exclusive use"),
        (60, 20),
    );
    // Once the exclusive consumer's connection is gone, the queue can be consumed again.
    h.broker.disconnect(first.id, h.now);
    second.open_channel(&mut h, 3);
    second.consume(&mut h, 3, q, "now-mine", true);
}

#[test]
fn reused_consumer_tags_close_the_connection() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    c.consume(&mut h, 1, "q", "t", false);
    c.send(&mut h, 1, consume("q", "t", false, false));
    c.expect_connection_close(
        &mut h,
        530,
        "NOT_ALLOWED - attempt to reuse consumer tag 't'",
        (60, 20),
    );
}

#[test]
fn cancel_from_the_client_and_from_the_broker() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    c.consume(&mut h, 1, "q", "t", false);
    c.publish(&mut h, 1, "", "q", "m1");
    let d = c.expect_delivery(&mut h);
    c.send(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: "t".into(),
            nowait: false,
        })),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
            consumer_tag: "t".into(),
        })),
    );
    assert_eq!(h.broker.queue("/", "q").unwrap().consumers, 0);
    // Deliveries of a cancelled consumer can still be acknowledged.
    c.ack(&mut h, 1, d.delivery_tag, false);
    c.publish(&mut h, 1, "", "q", "m2");
    c.expect_nothing(&mut h);

    // The broker cancels consumers of a deleted queue (consumer_cancel_notify).
    let tag = c.consume(&mut h, 1, "q", "", false);
    c.expect_delivery(&mut h);
    let mut other = h.client("/");
    other.send(
        &mut h,
        1,
        AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: "q".into(),
            if_unused: false,
            if_empty: false,
            nowait: false,
        })),
    );
    other.expect(
        &mut h,
        1,
        AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
            message_count: 0,
        })),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: tag.as_str().into(),
            nowait: true,
        })),
    );
}

#[test]
fn no_cancel_notification_without_the_capability() {
    let mut h = Harness::new();
    let mut c = h.raw_client();
    c.send_bytes(&mut h, b"AMQP\x00\x00\x09\x01");
    c.next_method(&mut h);
    c.send(&mut h, 0, start_ok("guest", "guest", false));
    c.next_method(&mut h);
    c.send(
        &mut h,
        0,
        AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::TuneOk(
            amq_protocol::protocol::connection::TuneOk {
                channel_max: 10,
                frame_max: 131072,
                heartbeat: 0,
            },
        )),
    );
    c.send(
        &mut h,
        0,
        AMQPClass::Connection(amq_protocol::protocol::connection::AMQPMethod::Open(
            amq_protocol::protocol::connection::Open {
                virtual_host: "/".into(),
            },
        )),
    );
    c.next_method(&mut h);
    c.open_channel(&mut h, 1);
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    c.consume(&mut h, 1, "q", "t", false);
    let mut other = h.client("/");
    other.send(
        &mut h,
        1,
        AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: "q".into(),
            if_unused: false,
            if_empty: false,
            nowait: true,
        })),
    );
    c.expect_nothing(&mut h);
    assert!(h.broker.queue("/", "q").is_none());
}

#[test]
fn basic_get_and_recover() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    publish_n(&mut h, &mut c, "q", 2);
    let get = |no_ack| {
        AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: "q".into(),
            no_ack,
        }))
    };
    c.send(&mut h, 1, get(false));
    c.expect(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: 1,
            redelivered: false,
            exchange: "".into(),
            routing_key: "q".into(),
            message_count: 1,
        })),
    );
    assert_eq!(c.content(&mut h, 1).1, b"m1");
    c.send(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Recover(basic::Recover { requeue: true })),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {})),
    );
    c.send(&mut h, 1, get(true));
    let (_, m) = c.next_method(&mut h);
    let AMQPClass::Basic(basic::AMQPMethod::GetOk(ok)) = m else {
        panic!("{m:?}");
    };
    assert!(ok.redelivered);
    assert_eq!(c.content(&mut h, 1).1, b"m1");
    c.send(&mut h, 1, get(true));
    c.next_method(&mut h);
    c.content(&mut h, 1);
    c.send(&mut h, 1, get(true));
    c.expect(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
    );
}

#[test]
fn closing_a_channel_or_losing_the_connection_requeues() {
    let mut h = Harness::new();
    let mut p = h.client("/");
    p.declare_queue(&mut h, 1, "q", FieldTable::default());
    publish_n(&mut h, &mut p, "q", 3);
    let mut c = h.client("/");
    c.consume(&mut h, 1, "q", "t", false);
    c.deliveries(&mut h, 3);
    c.close_channel(&mut h, 1);
    let q = h.broker.queue("/", "q").unwrap();
    assert_eq!(
        (q.messages_ready, q.messages_unacknowledged, q.consumers),
        (3, 0, 0)
    );

    c.open_channel(&mut h, 1);
    c.consume(&mut h, 1, "q", "t", false);
    let ds = c.deliveries(&mut h, 3);
    assert!(ds.iter().all(|d| d.redelivered));
    h.broker.disconnect(c.id, h.now);
    let mut d = h.client("/");
    d.consume(&mut h, 1, "q", "t2", true);
    assert_eq!(texts(&d.deliveries(&mut h, 3)), ["m1", "m2", "m3"]);
}

#[test]
fn auto_delete_queue_goes_with_its_last_consumer() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.send(
        &mut h,
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "ad".into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: true,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    );
    c.next_method(&mut h);
    h.broker.disconnect(c.id, h.now);
    assert!(
        h.broker.queue("/", "ad").is_some(),
        "never had a consumer: stays"
    );
    let mut c = h.client("/");
    c.consume(&mut h, 1, "ad", "a", true);
    c.consume(&mut h, 1, "ad", "b", true);
    c.send(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: "a".into(),
            nowait: true,
        })),
    );
    assert!(h.broker.queue("/", "ad").is_some(), "one consumer left");
    c.close_channel(&mut h, 1);
    assert!(h.broker.queue("/", "ad").is_none());
}

#[test]
fn an_unacknowledged_delivery_times_out_as_on_rabbitmq() {
    use std::time::Duration;
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    c.publish(&mut h, 1, "", "q", "slow");
    c.consume(&mut h, 1, "q", "t", false);
    c.expect_delivery(&mut h);
    let due = h.now + Duration::from_secs(1800);
    assert_eq!(h.broker.poll_timeout(), Some(due));
    h.advance(Duration::from_secs(1799));
    c.expect_nothing(&mut h);
    h.advance(Duration::from_secs(1));
    c.expect_channel_close(
        &mut h,
        1,
        406,
        "PRECONDITION_FAILED - delivery acknowledgement on channel 1 timed out. Timeout value \
         used: 1800000 ms. This timeout value can be configured, see consumers doc guide to \
         learn more",
        (0, 0),
    );
    let q = h.broker.queue("/", "q").unwrap();
    assert_eq!((q.messages_ready, q.consumers), (1, 0), "requeued");
}

#[test]
fn deliveries_pause_while_the_consumer_does_not_read() {
    let mut h = Harness::with_config(nuropb_testkit::broker::BrokerConfig {
        max_output_buffer: 2000,
        ..nuropb_testkit::broker::BrokerConfig::default()
    });
    let mut p = h.client("/");
    p.declare_queue(&mut h, 1, "q", FieldTable::default());
    let mut c = h.client("/");
    c.consume(&mut h, 1, "q", "t", true);
    let body = "x".repeat(500);
    for _ in 0..20 {
        p.publish(&mut h, 1, "", "q", &body);
    }
    let pending = h.broker.pending_output(c.id);
    assert!(
        (2000..2000 + 600).contains(&pending),
        "{pending} bytes waiting"
    );
    let ready = h.broker.queue("/", "q").unwrap().messages_ready;
    assert!(ready >= 15, "{ready} left in the queue");
    // Reading resumes them, a budget at a time.
    let mut got = 0;
    while got < 20 {
        let before = got;
        got += c
            .drain(&mut h)
            .iter()
            .filter(|f| {
                matches!(
                    f,
                    nuropb_proto::amqp::Frame::Method(
                        _,
                        AMQPClass::Basic(basic::AMQPMethod::Deliver(_))
                    )
                )
            })
            .count();
        assert!(got > before, "no progress at {got}");
    }
    assert_eq!(h.broker.queue("/", "q").unwrap().messages_ready, 0);
}
