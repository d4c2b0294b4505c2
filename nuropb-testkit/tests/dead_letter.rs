//! Dead-lettering with `x-death`, TTL expiry (queue `x-message-ttl` and per-message
//! `expiration`, time passed in), `x-max-length` drop-head, `x-dead-letter-routing-key`, repeated
//! deaths, cycles, and the mesh's dead-letter fanout as NuroPb sets it up.

mod support;

use amq_protocol::types::{AMQPValue, FieldArray, FieldTable};
use nuropb_proto::amqp::{Headers, Properties};
use nuropb_testkit::broker::BrokerConfig;
use std::time::Duration;
use support::*;

/// The mesh's dead-letter setup: a fanout DLX and its queue, a service queue pointing at it.
fn mesh(h: &mut Harness, c: &mut Client, service_args: &[(&str, AMQPValue)]) {
    c.declare_exchange(h, 1, "nuropb-dl-exchange", "fanout");
    c.declare_queue(h, 1, "nuropb-dl-queue", FieldTable::default());
    c.bind(
        h,
        1,
        "nuropb-dl-queue",
        "nuropb-dl-exchange",
        "nuropb-dl-queue",
    );
    let mut args = vec![("x-dead-letter-exchange", long("nuropb-dl-exchange"))];
    args.extend(service_args.iter().cloned());
    c.declare_queue(h, 1, "svc-sq", table(&args));
}

fn death(d: &Delivery) -> &FieldTable {
    let Some(AMQPValue::FieldArray(a)) = d.header("x-death") else {
        panic!("no x-death in {:?}", d.properties);
    };
    match a.as_slice().first() {
        Some(AMQPValue::FieldTable(t)) => t,
        other => panic!("{other:?}"),
    }
}

fn nuropb_headers() -> Headers {
    let mut hd = Headers::default();
    hd.insert("nuropb_protocol", long("0.1.1"));
    hd.insert("nuropb_version", long("0.1.8"));
    hd.insert("nuropb_type", long("command"));
    hd.insert("trace_id", long("cmdtrace000000000000000000000001"));
    hd.insert("encrypted", long(""));
    hd
}

#[test]
fn a_rejected_message_is_dead_lettered_with_x_death_as_in_the_capture() {
    let mut h = Harness::with_config(BrokerConfig {
        unix_time_origin: 1_795_000_000,
        ..BrokerConfig::default()
    });
    let mut c = h.client("nuropb-cap-command");
    mesh(&mut h, &mut c, &[]);
    let props = Properties {
        content_type: Some("application/json".into()),
        headers: Some(nuropb_headers()),
        correlation_id: Some("9acd2f40a88044639658ecdf6fdfb141".into()),
        reply_to: Some("client-rq".into()),
        expiration: Some("1800000".into()),
        ..Default::default()
    };
    c.publish_with(
        &mut h,
        1,
        "",
        "svc-sq",
        true,
        &props,
        r#"{"tag": "command"}"#,
    );
    c.consume(&mut h, 1, "svc-sq", "svc", false);
    let d = c.expect_delivery(&mut h);
    assert_eq!(d.properties, props, "delivered unchanged");
    h.advance(Duration::from_secs(7));
    c.reject(&mut h, 1, d.delivery_tag, false);

    let mut dl = h.client("nuropb-cap-command");
    dl.consume(&mut h, 1, "nuropb-dl-queue", "dl", true);
    let d = dl.expect_delivery(&mut h);
    assert_eq!(d.text(), r#"{"tag": "command"}"#);
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        ("nuropb-dl-exchange", "svc-sq")
    );
    assert_eq!(d.properties.expiration, None, "expiration is stripped");
    assert_eq!(d.properties.correlation_id, props.correlation_id);
    let keys: Vec<&str> = d.properties.headers.as_ref().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "encrypted",
            "nuropb_protocol",
            "nuropb_type",
            "nuropb_version",
            "trace_id",
            "x-death",
            "x-first-death-exchange",
            "x-first-death-queue",
            "x-first-death-reason"
        ],
        "sorted, as RabbitMQ leaves them"
    );
    let x = death(&d).inner();
    assert_eq!(x.get("count"), Some(&AMQPValue::LongLongInt(1)));
    assert_eq!(x.get("reason"), Some(&long("rejected")));
    assert_eq!(x.get("queue"), Some(&long("svc-sq")));
    assert_eq!(x.get("exchange"), Some(&long("")));
    assert_eq!(x.get("time"), Some(&AMQPValue::Timestamp(1_795_000_007)));
    assert_eq!(
        x.get("routing-keys"),
        Some(&AMQPValue::FieldArray(FieldArray::from(vec![long(
            "svc-sq"
        )])))
    );
    assert_eq!(x.get("original-expiration"), Some(&long("1800000")));
    assert_eq!(d.header("x-first-death-reason"), Some(&long("rejected")));
    assert_eq!(d.header("x-first-death-queue"), Some(&long("svc-sq")));
    assert_eq!(d.header("x-first-death-exchange"), Some(&long("")));
}

#[test]
fn requeue_true_does_not_dead_letter_and_no_dlx_drops() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    mesh(&mut h, &mut c, &[]);
    c.declare_queue(&mut h, 1, "plain", FieldTable::default());
    c.publish(&mut h, 1, "", "plain", "gone");
    c.publish(&mut h, 1, "", "svc-sq", "back");
    c.consume(&mut h, 1, "plain", "p", false);
    let d = c.expect_delivery(&mut h);
    c.reject(&mut h, 1, d.delivery_tag, false);
    assert_eq!(h.broker.queue("/", "plain").unwrap().messages_ready, 0);
    assert_eq!(
        h.broker
            .queue("/", "nuropb-dl-queue")
            .unwrap()
            .messages_ready,
        0
    );
    c.consume(&mut h, 1, "svc-sq", "s", false);
    let d = c.expect_delivery(&mut h);
    c.nack(&mut h, 1, d.delivery_tag, false, true);
    let again = c.expect_delivery(&mut h);
    assert!(again.redelivered);
    assert_eq!(
        h.broker
            .queue("/", "nuropb-dl-queue")
            .unwrap()
            .messages_ready,
        0
    );
}

#[test]
fn queue_ttl_expires_at_the_head_when_time_passes() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    mesh(
        &mut h,
        &mut c,
        &[("x-message-ttl", AMQPValue::LongInt(1000))],
    );
    c.publish(&mut h, 1, "", "svc-sq", "old");
    h.advance(Duration::from_millis(600));
    c.publish(&mut h, 1, "", "svc-sq", "young");
    assert_eq!(
        h.broker.poll_timeout(),
        Some(h.now + Duration::from_millis(400))
    );
    h.advance(Duration::from_millis(399));
    assert_eq!(h.broker.queue("/", "svc-sq").unwrap().messages_ready, 2);
    h.advance(Duration::from_millis(1));
    assert_eq!(h.broker.queue("/", "svc-sq").unwrap().messages_ready, 1);
    let dead = h.broker.messages("/", "nuropb-dl-queue");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, b"old");
    let Some(AMQPValue::FieldArray(a)) =
        dead[0].properties.headers.as_ref().unwrap().get("x-death")
    else {
        panic!()
    };
    let Some(AMQPValue::FieldTable(t)) = a.as_slice().first() else {
        panic!()
    };
    assert_eq!(t.inner().get("reason"), Some(&long("expired")));
    assert_eq!(
        t.inner().get("original-expiration"),
        None,
        "it had no expiration property"
    );
    h.advance(Duration::from_millis(600));
    assert_eq!(h.broker.queue("/", "svc-sq").unwrap().messages_ready, 0);
    assert_eq!(
        h.broker
            .queue("/", "nuropb-dl-queue")
            .unwrap()
            .messages_ready,
        2
    );
}

#[test]
fn per_message_expiration_waits_behind_a_live_head() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    mesh(&mut h, &mut c, &[]);
    c.publish(&mut h, 1, "", "svc-sq", "forever");
    c.publish_with(&mut h, 1, "", "svc-sq", false, &expiring("100"), "short");
    h.advance(Duration::from_secs(1));
    assert_eq!(
        h.broker.queue("/", "svc-sq").unwrap().messages_ready,
        2,
        "RabbitMQ's head-only rule"
    );
    c.consume(&mut h, 1, "svc-sq", "s", true);
    let d = c.expect_delivery(&mut h);
    assert_eq!(d.text(), "forever");
    c.expect_nothing(&mut h);
    let dead = h.broker.messages("/", "nuropb-dl-queue");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, b"short");
    assert_eq!(dead[0].properties.expiration, None);
}

#[test]
fn expiration_zero_is_delivered_only_if_a_consumer_is_ready() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    mesh(&mut h, &mut c, &[]);
    c.publish_with(
        &mut h,
        1,
        "",
        "svc-sq",
        false,
        &expiring("0"),
        "nobody there",
    );
    assert_eq!(h.broker.queue("/", "svc-sq").unwrap().messages_ready, 0);
    assert_eq!(
        h.broker
            .queue("/", "nuropb-dl-queue")
            .unwrap()
            .messages_ready,
        1
    );
    c.consume(&mut h, 1, "svc-sq", "s", true);
    c.publish_with(&mut h, 1, "", "svc-sq", false, &expiring("0"), "taken");
    assert_eq!(c.expect_delivery(&mut h).text(), "taken");
}

#[test]
fn max_length_drops_the_head_into_the_dead_letter_exchange() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    mesh(
        &mut h,
        &mut c,
        &[("x-max-length", AMQPValue::ShortShortUInt(2))],
    );
    for m in ["m1", "m2", "m3", "m4"] {
        c.publish(&mut h, 1, "", "svc-sq", m);
    }
    let left: Vec<Vec<u8>> = h
        .broker
        .messages("/", "svc-sq")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(left, [b"m3".to_vec(), b"m4".to_vec()]);
    let dead = h.broker.messages("/", "nuropb-dl-queue");
    assert_eq!(
        dead.iter().map(|m| m.body.clone()).collect::<Vec<_>>(),
        [b"m1".to_vec(), b"m2".to_vec()]
    );
    let x = dead[0].properties.headers.as_ref().unwrap();
    assert_eq!(x.get("x-first-death-reason"), Some(&long("maxlen")));
}

#[test]
fn the_broker_bound_behaves_like_max_length() {
    let mut h = Harness::with_config(BrokerConfig {
        max_queue_messages: 3,
        ..BrokerConfig::default()
    });
    let mut c = h.client("/");
    mesh(&mut h, &mut c, &[]);
    for i in 0..10 {
        c.publish(&mut h, 1, "", "svc-sq", &format!("m{i}"));
    }
    assert_eq!(h.broker.queue("/", "svc-sq").unwrap().messages_ready, 3);
    // The dead-letter queue is bounded as well: it keeps the newest three.
    let dead: Vec<Vec<u8>> = h
        .broker
        .messages("/", "nuropb-dl-queue")
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(dead, [b"m4".to_vec(), b"m5".to_vec(), b"m6".to_vec()]);
}

#[test]
fn dead_letter_routing_key_and_repeated_deaths() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(
        &mut h,
        1,
        "work",
        table(&[
            ("x-dead-letter-exchange", long("")),
            ("x-dead-letter-routing-key", long("retry")),
        ]),
    );
    c.declare_queue(
        &mut h,
        1,
        "retry",
        table(&[
            ("x-dead-letter-exchange", long("")),
            ("x-dead-letter-routing-key", long("work")),
        ]),
    );
    c.consume(&mut h, 1, "work", "w", false);
    c.consume(&mut h, 1, "retry", "r", false);
    c.publish(&mut h, 1, "", "work", "job");
    // work -> retry -> work -> retry: two deaths in each queue.
    for expect_queue in ["work", "retry", "work", "retry"] {
        let d = c.expect_delivery(&mut h);
        assert_eq!(d.routing_key, expect_queue);
        c.reject(&mut h, 1, d.delivery_tag, false);
    }
    let d = c.expect_delivery(&mut h);
    assert_eq!(d.routing_key, "work");
    let Some(AMQPValue::FieldArray(a)) = d.header("x-death") else {
        panic!()
    };
    let entries: Vec<(AMQPValue, AMQPValue)> = a
        .as_slice()
        .iter()
        .map(|e| match e {
            AMQPValue::FieldTable(t) => (
                t.inner().get("queue").unwrap().clone(),
                t.inner().get("count").unwrap().clone(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        entries,
        [
            (long("retry"), AMQPValue::LongLongInt(2)),
            (long("work"), AMQPValue::LongLongInt(2))
        ],
        "the latest death first, counts per queue and reason"
    );
    assert_eq!(d.header("x-first-death-queue"), Some(&long("work")));
}

#[test]
fn automatic_cycles_are_dropped() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    // A queue that dead-letters expired messages back to itself.
    c.declare_queue(
        &mut h,
        1,
        "loop",
        table(&[
            ("x-dead-letter-exchange", long("")),
            ("x-message-ttl", AMQPValue::LongInt(10)),
        ]),
    );
    c.publish(&mut h, 1, "", "loop", "spin");
    h.advance(Duration::from_millis(10));
    assert_eq!(h.broker.queue("/", "loop").unwrap().messages_ready, 0);
    assert_eq!(h.broker.poll_timeout(), None);
}
