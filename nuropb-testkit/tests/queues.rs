//! Queues: server-named, exclusive (owned by the declaring connection, 405 for others), durable
//! redeclare equivalence (406), argument validation, purge, delete with `if_unused`/`if_empty`,
//! and the channel's last declared queue behind `""`.

mod support;

use amq_protocol::protocol::{AMQPClass, basic, queue};
use amq_protocol::types::{AMQPValue, FieldTable};
use nuropb_testkit::broker::BrokerConfig;
use support::*;

const LOCKED: &str = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'ex' in vhost \
                      '/'. It could be originally declared on another connection or the exclusive \
                      property value does not match that of the original declaration.";

fn delete(name: &str, if_unused: bool, if_empty: bool) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
        queue: name.into(),
        if_unused,
        if_empty,
        nowait: false,
    }))
}

#[test]
fn server_named_queues_and_the_last_declared_queue() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    let name = c.declare_queue(&mut h, 1, "", FieldTable::default());
    assert!(
        name.starts_with("amq.gen-") && name.len() == "amq.gen-".len() + 22,
        "{name}"
    );
    let other = c.declare_queue(&mut h, 1, "", FieldTable::default());
    assert_ne!(name, other);
    // "" means the last queue declared on the channel.
    c.bind(&mut h, 1, "", "amq.fanout", "");
    assert!(
        h.broker
            .bindings("/")
            .iter()
            .any(|b| b.source == "amq.fanout" && b.destination == other)
    );
    c.open_channel(&mut h, 2);
    c.send(&mut h, 2, consume("", "", true, false));
    c.expect_channel_close(
        &mut h,
        2,
        404,
        "NOT_FOUND - no previously declared queue",
        (60, 20),
    );
    // The same seed gives the same names.
    let mut h2 = Harness::new();
    let mut c2 = h2.client("/");
    assert_eq!(
        c2.declare_queue(&mut h2, 1, "", FieldTable::default()),
        name
    );
    let mut h3 = Harness::with_config(BrokerConfig {
        seed: 99,
        ..BrokerConfig::default()
    });
    let mut c3 = h3.client("/");
    assert_ne!(
        c3.declare_queue(&mut h3, 1, "", FieldTable::default()),
        name
    );
}

#[test]
fn exclusive_queues_belong_to_their_connection() {
    let mut h = Harness::new();
    let mut owner = h.client("/");
    owner.send(
        &mut h,
        1,
        queue_declare("ex", false, false, true, FieldTable::default()),
    );
    owner.next_method(&mut h);
    assert!(h.broker.queue("/", "ex").unwrap().exclusive);
    // The owner may use it any way.
    owner.consume(&mut h, 1, "ex", "mine", true);

    let mut other = h.client("/");
    let attempts: Vec<(AMQPClass, (u16, u16))> = vec![
        (
            queue_declare("ex", true, false, false, FieldTable::default()),
            (50, 10),
        ),
        (
            queue_declare("ex", false, false, false, FieldTable::default()),
            (50, 10),
        ),
        (consume("ex", "", true, false), (60, 20)),
        (
            AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
                queue: "ex".into(),
                exchange: "amq.direct".into(),
                routing_key: "k".into(),
                nowait: false,
                arguments: FieldTable::default(),
            })),
            (50, 20),
        ),
        (
            AMQPClass::Queue(queue::AMQPMethod::Purge(queue::Purge {
                queue: "ex".into(),
                nowait: false,
            })),
            (50, 30),
        ),
        (delete("ex", false, false), (50, 40)),
        (
            AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
                queue: "ex".into(),
                no_ack: true,
            })),
            (60, 70),
        ),
    ];
    for (i, (m, ids)) in attempts.into_iter().enumerate() {
        let ch = i as u16 + 2;
        other.open_channel(&mut h, ch);
        other.send(&mut h, ch, m);
        other.expect_channel_close(&mut h, ch, 405, LOCKED, ids);
    }
    // Declaring a shared queue exclusive is refused the same way.
    other.declare_queue(&mut h, 1, "shared", FieldTable::default());
    owner.send(
        &mut h,
        1,
        queue_declare("shared", false, false, true, FieldTable::default()),
    );
    owner.expect_channel_close(
        &mut h,
        1,
        405,
        &LOCKED.replace("'ex'", "'shared'"),
        (50, 10),
    );
    // It goes with its connection.
    h.broker.disconnect(owner.id, h.now);
    assert!(h.broker.queue("/", "ex").is_none());
}

#[test]
fn redeclaring_must_be_equivalent() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(
        &mut h,
        1,
        "q",
        table(&[
            ("x-dead-letter-exchange", long("dlx")),
            ("x-custom", long("a")),
        ]),
    );
    // Same arguments; unknown ones are not compared.
    c.declare_queue(
        &mut h,
        1,
        "q",
        table(&[
            ("x-dead-letter-exchange", long("dlx")),
            ("x-custom", long("b")),
        ]),
    );
    let cases: Vec<(AMQPClass, &str)> = vec![
        (
            queue_declare(
                "q",
                false,
                true,
                false,
                table(&[("x-dead-letter-exchange", long("dlx"))]),
            ),
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': received \
             'true' but current is 'false'",
        ),
        (
            queue_declare("q", false, false, false, FieldTable::default()),
            "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'q' in vhost \
             '/': received none but current is the value 'dlx' of type 'longstr'",
        ),
        (
            queue_declare(
                "q",
                false,
                false,
                false,
                table(&[("x-dead-letter-exchange", long("other"))]),
            ),
            "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' for queue 'q' in vhost \
             '/': received 'other' but current is 'dlx'",
        ),
    ];
    for (i, (m, text)) in cases.into_iter().enumerate() {
        let ch = i as u16 + 2;
        c.open_channel(&mut h, ch);
        c.send(&mut h, ch, m);
        c.expect_channel_close(&mut h, ch, 406, text, (50, 10));
    }
}

#[test]
fn invalid_arguments_and_reserved_names() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    let cases: Vec<(FieldTable, &str)> = vec![
        (
            table(&[("x-message-ttl", AMQPValue::LongInt(-1))]),
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'q2' in vhost '/': \
             {value_negative,-1}",
        ),
        (
            table(&[("x-max-length", long("many"))]),
            "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'q2' in vhost '/': \
             \"expected integer, got longstr\"",
        ),
        (
            table(&[("x-dead-letter-routing-key", long("k"))]),
            "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue 'q2' in vhost \
             '/': routing_key_but_no_dlx_defined",
        ),
    ];
    for (i, (args, text)) in cases.into_iter().enumerate() {
        let ch = i as u16 + 1;
        if ch > 1 {
            c.open_channel(&mut h, ch);
        }
        c.send(&mut h, ch, queue_declare("q2", false, false, false, args));
        c.expect_channel_close(&mut h, ch, 406, text, (50, 10));
    }
    assert!(h.broker.queue("/", "q2").is_none());
    c.open_channel(&mut h, 9);
    c.send(
        &mut h,
        9,
        queue_declare("amq.foo", false, false, false, FieldTable::default()),
    );
    c.expect_channel_close(
        &mut h,
        9,
        403,
        "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'",
        (50, 10),
    );
}

#[test]
fn purge_and_delete() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    for m in ["a", "b", "c"] {
        c.publish(&mut h, 1, "", "q", m);
    }
    c.send(
        &mut h,
        1,
        queue_declare("q", true, false, false, FieldTable::default()),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
            queue: "q".into(),
            message_count: 3,
            consumer_count: 0,
        })),
    );
    c.send(&mut h, 1, delete("q", false, true));
    c.expect_channel_close(
        &mut h,
        1,
        406,
        "PRECONDITION_FAILED - queue 'q' in vhost '/' not empty",
        (50, 40),
    );
    c.open_channel(&mut h, 1);
    c.send(
        &mut h,
        1,
        AMQPClass::Queue(queue::AMQPMethod::Purge(queue::Purge {
            queue: "q".into(),
            nowait: false,
        })),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Queue(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
            message_count: 3,
        })),
    );
    c.publish(&mut h, 1, "", "q", "outstanding");
    c.send(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: "q".into(),
            no_ack: false,
        })),
    );
    c.next_method(&mut h);
    c.content(&mut h, 1);
    c.consume(&mut h, 1, "q", "t", true);
    c.send(&mut h, 1, delete("q", true, false));
    c.expect_channel_close(
        &mut h,
        1,
        406,
        "PRECONDITION_FAILED - queue 'q' in vhost '/' in use",
        (50, 40),
    );
    // The channel's close requeued the outstanding message.
    assert_eq!(h.broker.queue("/", "q").unwrap().messages_ready, 1);
    c.open_channel(&mut h, 1);
    c.send(&mut h, 1, delete("missing", false, false));
    c.expect(
        &mut h,
        1,
        AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
            message_count: 0,
        })),
    );
    c.qos(&mut h, 1, 1, false);
    c.consume(&mut h, 1, "q", "t2", false);
    let d = c.expect_delivery(&mut h);
    c.publish(&mut h, 1, "", "q", "ready");
    c.open_channel(&mut h, 2);
    c.send(&mut h, 2, delete("q", false, false));
    c.expect(
        &mut h,
        1,
        AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: "t2".into(),
            nowait: true,
        })),
    );
    c.expect(
        &mut h,
        2,
        AMQPClass::Queue(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
            message_count: 1,
        })),
    );
    // Its outstanding deliveries are forgotten, as on RabbitMQ.
    c.ack(&mut h, 1, d.delivery_tag, false);
    c.expect_channel_close(
        &mut h,
        1,
        406,
        &format!(
            "PRECONDITION_FAILED - unknown delivery tag {}",
            d.delivery_tag
        ),
        (60, 80),
    );
    assert!(h.broker.queue("/", "q").is_none());
    assert!(h.broker.bindings("/").iter().all(|b| b.destination != "q"));
}

#[test]
fn vhosts_are_separate() {
    let mut h = Harness::new();
    let mut a = h.client("a");
    let mut b = h.client("b");
    a.declare_queue(&mut h, 1, "q", FieldTable::default());
    b.send(
        &mut h,
        1,
        queue_declare("q", true, false, false, FieldTable::default()),
    );
    b.expect_channel_close(
        &mut h,
        1,
        404,
        "NOT_FOUND - no queue 'q' in vhost 'b'",
        (50, 10),
    );
    assert_eq!(h.broker.vhosts(), ["/", "a", "b"]);
}
