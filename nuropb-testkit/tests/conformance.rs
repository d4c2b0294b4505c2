//! Differential conformance: the same scenarios, through the same client code
//! (`nuropb_proto::amqp::Connection` over a blocking TCP stream), against the machine's RabbitMQ
//! and against the testkit broker's TCP server; what the client observes must be the same.
//! RabbitMQ's answer is the truth. A missing RabbitMQ fails the test (set
//! `NUROPB_TEST_AMQP_URL` to use another one); it is never skipped.
//!
//! Names carry a prefix unique to the run (shown as `P-` in transcripts) and the virtual host
//! shows as `V`; everything else — reply codes and texts, delivery tags, redelivered flags,
//! message counts, returns, confirms, `x-death` headers (but their `time`) — is compared as is.
//! `NUROPB_CONFORMANCE_PRINT=1` prints RabbitMQ's transcripts.

mod conformance_support;

use conformance_support::*;
use nuropb_proto::amqp::{
    AMQPValue, Consume, Event, ExchangeDeclare, FieldTable, LongString, Properties, QueueBind,
    QueueDeclare, QueueDelete,
};
use std::time::Duration;

type Scenario = fn(&mut Ctx);

const SCENARIOS: &[(&str, Scenario)] = &[
    ("declare", declare),
    ("bind_and_route", bind_and_route),
    ("consume_ack_nack_reject", consume_ack_nack_reject),
    ("dead_letter_and_expiry", dead_letter_and_expiry),
    ("queue_ttl", queue_ttl),
    ("max_length", max_length),
    ("returns", returns),
    ("exclusive_and_cancel", exclusive_and_cancel),
    ("confirms_and_errors", confirms_and_errors),
    ("connection_errors", connection_errors),
    ("unreadable_properties", unreadable_properties),
];

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.to_owned()))
}

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn plain() -> Properties {
    Properties::default()
}

fn channel_closed(e: &Event) -> bool {
    matches!(e, Event::ChannelClosed { .. })
}

/// Waits for the broker to close channel 1, then opens it again.
fn reopen(c: &mut Client, cx: &mut Ctx) {
    c.until(&mut cx.t, "channel.close", channel_closed);
    assert_eq!(c.conn.open_channel().unwrap(), 1);
    c.until(&mut cx.t, "channel.open-ok", |e| {
        matches!(e, Event::ChannelOpened { .. })
    });
}

fn declare_queue(c: &mut Client, cx: &mut Ctx, q: QueueDeclare) {
    let id = c.conn.queue_declare(1, &q).unwrap();
    c.done(&mut cx.t, id);
}

/// Declares `q` exclusive to this connection, with `arguments`.
fn declare_exclusive(c: &mut Client, cx: &mut Ctx, q: &str, arguments: FieldTable) {
    declare_queue(
        c,
        cx,
        QueueDeclare {
            exclusive: true,
            arguments,
            ..QueueDeclare::new(q)
        },
    );
}

/// Declares `q` passively: is it there, and how full.
fn declare_passive(c: &mut Client, cx: &mut Ctx, q: &str) {
    declare_queue(
        c,
        cx,
        QueueDeclare {
            passive: true,
            ..QueueDeclare::new(q)
        },
    );
}

fn confirm(c: &mut Client, cx: &mut Ctx) {
    let id = c.conn.confirm_select(1, false).unwrap();
    c.done(&mut cx.t, id);
}

/// Waits for `count` confirms, and logs the confirms in sequence
/// order: RabbitMQ confirms an unroutable message at once and a routed one when its queues have
/// it, so their order on the wire depends on timing (and comes with `multiple`), not on the
/// broker's rules.
fn confirms(c: &mut Client, cx: &mut Ctx, count: usize) {
    let mut got = std::collections::BTreeMap::new();
    let mut other = Transcript::default();
    while got.len() < count {
        let e = c.until(&mut other, "confirms", |e| {
            matches!(e, Event::Confirmed { .. })
        });
        if let Event::Confirmed { seq, outcome, .. } = e {
            got.insert(seq, outcome);
        }
    }
    for line in other.lines {
        if !line.starts_with("confirm ") {
            cx.t.log(line);
        }
    }
    for (seq, outcome) in got {
        cx.t.log(format!("confirm {seq} {outcome:?}"));
    }
}

fn get(c: &mut Client, cx: &mut Ctx, q: &str, no_ack: bool) {
    let id = c.conn.basic_get(1, q, no_ack).unwrap();
    c.done(&mut cx.t, id);
}

fn declare(cx: &mut Ctx) {
    let mut c = cx.client();
    let q = cx.name("q");
    declare_queue(
        &mut c,
        cx,
        QueueDeclare {
            auto_delete: true,
            ..QueueDeclare::new(&q)
        },
    );
    declare_passive(&mut c, cx, &q);
    declare_queue(
        &mut c,
        cx,
        QueueDeclare {
            auto_delete: true,
            ..QueueDeclare::new(&q)
        },
    );
    cx.t.log("-- redeclared durable");
    declare_queue(
        &mut c,
        cx,
        QueueDeclare {
            durable: true,
            auto_delete: true,
            ..QueueDeclare::new(&q)
        },
    );
    reopen(&mut c, cx);
    cx.t.log("-- redeclared with other arguments");
    let ttl = args(&[("x-message-ttl", AMQPValue::LongInt(1000))]);
    declare_queue(
        &mut c,
        cx,
        QueueDeclare {
            auto_delete: true,
            arguments: ttl,
            ..QueueDeclare::new(&q)
        },
    );
    reopen(&mut c, cx);
    cx.t.log("-- passive, missing");
    let none = cx.name("none");
    declare_passive(&mut c, cx, &none);
    reopen(&mut c, cx);
    cx.t.log("-- bad argument type");
    let bad = args(&[("x-message-ttl", long("soon"))]);
    declare_queue(
        &mut c,
        cx,
        QueueDeclare {
            arguments: bad,
            ..QueueDeclare::new(cx.name("bad"))
        },
    );
    reopen(&mut c, cx);
    cx.t.log("-- reserved name");
    declare_queue(&mut c, cx, QueueDeclare::new("amq.reserved"));
    reopen(&mut c, cx);
    let id = c.conn.queue_delete(1, &QueueDelete::new(&q)).unwrap();
    c.done(&mut cx.t, id);
    c.close();
}

fn bind_and_route(cx: &mut Ctx) {
    let mut c = cx.client();
    let (x, t) = (cx.name("direct"), cx.name("topic"));
    for (name, kind) in [(&x, "direct"), (&t, "topic")] {
        let id = c
            .conn
            .exchange_declare(1, &ExchangeDeclare::new(name, kind))
            .unwrap();
        c.done(&mut cx.t, id);
    }
    let (q1, q2) = (cx.name("q1"), cx.name("q2"));
    for q in [&q1, &q2] {
        declare_exclusive(&mut c, cx, q, FieldTable::default());
    }
    for (q, ex, key) in [
        (&q1, &x, "a"),
        (&q2, &t, "a.*"),
        (&q2, &t, "#.z"),
        (&q2, &t, "a.*"),
    ] {
        let id = c.conn.queue_bind(1, &QueueBind::new(q, ex, key)).unwrap();
        c.done(&mut cx.t, id);
    }
    confirm(&mut c, cx);
    for (ex, key, body) in [
        (&x, "a", "m1"),
        (&x, "b", "m2"),
        (&t, "a.b", "m3"),
        (&t, "x.y.z", "m4"),
        (&t, "a.b.c", "m5"),
        (&t, "z", "m6"),
    ] {
        publish(&mut c, ex, key, &plain(), body);
    }
    confirms(&mut c, cx, 6);
    for q in [&q1, &q1, &q2, &q2, &q2, &q2] {
        get(&mut c, cx, q, true);
    }
    cx.t.log("-- bind to a missing exchange");
    let id = c
        .conn
        .queue_bind(1, &QueueBind::new(&q1, cx.name("nox"), "k"))
        .unwrap();
    c.done(&mut cx.t, id);
    reopen(&mut c, cx);
    cx.t.log("-- bind a missing queue");
    let id = c
        .conn
        .queue_bind(1, &QueueBind::new(cx.name("noq"), &x, "k"))
        .unwrap();
    c.done(&mut cx.t, id);
    reopen(&mut c, cx);
    cx.t.log("-- redeclare an exchange as another type");
    let id = c
        .conn
        .exchange_declare(1, &ExchangeDeclare::new(&x, "fanout"))
        .unwrap();
    c.done(&mut cx.t, id);
    reopen(&mut c, cx);
    for name in [&x, &t] {
        let id = c
            .conn
            .exchange_delete(1, &nuropb_proto::amqp::ExchangeDelete::new(name))
            .unwrap();
        c.done(&mut cx.t, id);
    }
    c.close();
}

fn consume_ack_nack_reject(cx: &mut Ctx) {
    let mut c = cx.client();
    let q = cx.name("work");
    declare_exclusive(&mut c, cx, &q, FieldTable::default());
    confirm(&mut c, cx);
    for body in ["one", "two", "three", "four"] {
        publish(&mut c, "", &q, &plain(), body);
    }
    confirms(&mut c, cx, 4);
    let id = c.conn.basic_qos(1, 10, false).unwrap();
    c.done(&mut cx.t, id);
    let consume = Consume {
        consumer_tag: "c1".into(),
        ..Consume::new(&q)
    };
    let id = c.conn.basic_consume(1, &consume).unwrap();
    c.done(&mut cx.t, id);
    c.until(
        &mut cx.t,
        "4 deliveries",
        |e| matches!(e, Event::Delivery(d) if d.delivery_tag == 4),
    );
    c.conn.basic_ack(1, 1, false).unwrap();
    c.conn.basic_nack(1, 2, false, true).unwrap();
    c.until(&mut cx.t, "the redelivery", |e| {
        matches!(e, Event::Delivery(_))
    });
    c.conn.basic_reject(1, 3, false).unwrap();
    c.conn.basic_nack(1, 4, false, false).unwrap();
    c.conn.basic_reject(1, 5, true).unwrap();
    c.until(&mut cx.t, "the second redelivery", |e| {
        matches!(e, Event::Delivery(_))
    });
    c.conn.basic_ack(1, 6, false).unwrap();
    c.quiet(&mut cx.t, Duration::from_millis(150));
    let id = c.conn.basic_cancel(1, "c1", false).unwrap();
    c.done(&mut cx.t, id);
    declare_passive(&mut c, cx, &q);
    cx.t.log("-- ack multiple");
    for body in ["five", "six", "seven"] {
        publish(&mut c, "", &q, &plain(), body);
    }
    confirms(&mut c, cx, 3);
    let id = c
        .conn
        .basic_consume(
            1,
            &Consume {
                consumer_tag: "c2".into(),
                ..Consume::new(&q)
            },
        )
        .unwrap();
    c.done(&mut cx.t, id);
    c.until(
        &mut cx.t,
        "3 deliveries",
        |e| matches!(e, Event::Delivery(d) if d.delivery_tag == 9),
    );
    c.conn.basic_ack(1, 8, true).unwrap();
    c.conn.basic_nack(1, 0, true, false).unwrap();
    c.quiet(&mut cx.t, Duration::from_millis(100));
    declare_passive(&mut c, cx, &q);
    cx.t.log("-- ack of an unknown tag");
    c.conn.basic_ack(1, 99, false).unwrap();
    c.until(&mut cx.t, "channel.close", channel_closed);
    c.close();
}

/// A fanout dead-letter exchange and an exclusive queue on it.
fn dead_letters(c: &mut Client, cx: &mut Ctx) -> (String, String) {
    let (dlx, dlq) = (cx.name("dlx"), cx.name("dlq"));
    let id = c
        .conn
        .exchange_declare(1, &ExchangeDeclare::new(&dlx, "fanout"))
        .unwrap();
    c.done(&mut cx.t, id);
    declare_exclusive(c, cx, &dlq, FieldTable::default());
    let id = c
        .conn
        .queue_bind(1, &QueueBind::new(&dlq, &dlx, ""))
        .unwrap();
    c.done(&mut cx.t, id);
    (dlx, dlq)
}

fn delete_exchange(c: &mut Client, cx: &mut Ctx, name: &str) {
    let id = c
        .conn
        .exchange_delete(1, &nuropb_proto::amqp::ExchangeDelete::new(name))
        .unwrap();
    c.done(&mut cx.t, id);
}

fn dead_letter_and_expiry(cx: &mut Ctx) {
    let mut c = cx.client();
    let (dlx, dlq) = dead_letters(&mut c, cx);
    let q = cx.name("src");
    let arguments = args(&[("x-dead-letter-exchange", long(&dlx))]);
    declare_exclusive(&mut c, cx, &q, arguments);
    confirm(&mut c, cx);
    let expiring = Properties {
        expiration: Some("40".into()),
        ..Properties::default()
    };
    publish(&mut c, "", &q, &expiring, "m-expires");
    publish(&mut c, "", &q, &plain(), "m-rejected");
    publish(&mut c, "", &q, &plain(), "m-nacked");
    confirms(&mut c, cx, 3);
    c.quiet(&mut cx.t, Duration::from_millis(300));
    get(&mut c, cx, &q, false);
    get(&mut c, cx, &q, false);
    c.conn.basic_reject(1, 1, false).unwrap();
    c.conn.basic_nack(1, 2, false, false).unwrap();
    c.quiet(&mut cx.t, Duration::from_millis(150));
    for _ in 0..4 {
        get(&mut c, cx, &dlq, true);
    }
    delete_exchange(&mut c, cx, &dlx);
    c.close();
}

fn queue_ttl(cx: &mut Ctx) {
    let mut c = cx.client();
    let (dlx, dlq) = dead_letters(&mut c, cx);
    let q = cx.name("ttl");
    let arguments = args(&[
        ("x-dead-letter-exchange", long(&dlx)),
        ("x-dead-letter-routing-key", long("moved")),
        ("x-message-ttl", AMQPValue::LongInt(50)),
    ]);
    declare_exclusive(&mut c, cx, &q, arguments);
    confirm(&mut c, cx);
    publish(&mut c, "", &q, &plain(), "t1");
    let longer = Properties {
        expiration: Some("10000".into()),
        ..Properties::default()
    };
    publish(&mut c, "", &q, &longer, "t2");
    confirms(&mut c, cx, 2);
    c.quiet(&mut cx.t, Duration::from_millis(400));
    declare_passive(&mut c, cx, &q);
    for _ in 0..3 {
        get(&mut c, cx, &dlq, true);
    }
    delete_exchange(&mut c, cx, &dlx);
    c.close();
}

fn max_length(cx: &mut Ctx) {
    let mut c = cx.client();
    let (dlx, dlq) = dead_letters(&mut c, cx);
    let q = cx.name("capped");
    let arguments = args(&[
        ("x-dead-letter-exchange", long(&dlx)),
        ("x-max-length", AMQPValue::LongInt(2)),
    ]);
    declare_exclusive(&mut c, cx, &q, arguments);
    let r = cx.name("refusing");
    let arguments = args(&[
        ("x-max-length", AMQPValue::LongInt(1)),
        ("x-overflow", long("reject-publish")),
    ]);
    declare_exclusive(&mut c, cx, &r, arguments);
    confirm(&mut c, cx);
    for body in ["c1", "c2", "c3"] {
        publish(&mut c, "", &q, &plain(), body);
    }
    publish(&mut c, "", &r, &plain(), "r1");
    publish(&mut c, "", &r, &plain(), "r2");
    confirms(&mut c, cx, 5);
    for queue in [&q, &q, &q, &r, &r, &dlq, &dlq] {
        get(&mut c, cx, queue, true);
    }
    delete_exchange(&mut c, cx, &dlx);
    c.close();
}

fn returns(cx: &mut Ctx) {
    let mut c = cx.client();
    confirm(&mut c, cx);
    publish_with(
        &mut c,
        "amq.direct",
        &cx.name("nowhere"),
        true,
        &plain(),
        "back",
    );
    publish_with(
        &mut c,
        "amq.direct",
        &cx.name("nowhere"),
        false,
        &plain(),
        "lost",
    );
    publish_with(&mut c, "", &cx.name("noqueue"), true, &plain(), "back2");
    confirms(&mut c, cx, 3);
    c.quiet(&mut cx.t, Duration::from_millis(100));
    cx.t.log("-- publish to a missing exchange");
    publish(&mut c, &cx.name("nox"), "k", &plain(), "x");
    reopen(&mut c, cx);
    cx.t.log("-- publish to an internal exchange");
    let internal = cx.name("internal");
    let declare = ExchangeDeclare {
        internal: true,
        ..ExchangeDeclare::new(&internal, "fanout")
    };
    let id = c.conn.exchange_declare(1, &declare).unwrap();
    c.done(&mut cx.t, id);
    publish(&mut c, &internal, "k", &plain(), "x");
    reopen(&mut c, cx);
    delete_exchange(&mut c, cx, &internal);
    c.close();
}

fn exclusive_and_cancel(cx: &mut Ctx) {
    let mut a = cx.client();
    let mut b = cx.client();
    let q = cx.name("shared");
    declare_queue(
        &mut a,
        cx,
        QueueDeclare {
            auto_delete: true,
            ..QueueDeclare::new(&q)
        },
    );
    let only = Consume {
        exclusive: true,
        consumer_tag: "a".into(),
        ..Consume::new(&q)
    };
    let id = a.conn.basic_consume(1, &only).unwrap();
    a.done(&mut cx.t, id);
    cx.t.log("-- a second consumer on an exclusively consumed queue");
    let id = b
        .conn
        .basic_consume(
            1,
            &Consume {
                consumer_tag: "b".into(),
                ..Consume::new(&q)
            },
        )
        .unwrap();
    b.done(&mut cx.t, id);
    reopen(&mut b, cx);
    cx.t.log("-- another connection's exclusive queue");
    let e = cx.name("mine");
    declare_exclusive(&mut a, cx, &e, FieldTable::default());
    declare_passive(&mut b, cx, &e);
    reopen(&mut b, cx);
    cx.t.log("-- the queue is deleted under its consumer");
    let id = b.conn.queue_delete(1, &QueueDelete::new(&q)).unwrap();
    b.done(&mut cx.t, id);
    a.until(&mut cx.t, "basic.cancel", |e| {
        matches!(e, Event::ConsumerCancelled { .. })
    });
    cx.t.log("-- a reused consumer tag");
    declare_exclusive(&mut a, cx, &q, FieldTable::default());
    for _ in 0..2 {
        let consume = Consume {
            consumer_tag: "dup".into(),
            ..Consume::new(&q)
        };
        let id = a.conn.basic_consume(1, &consume).unwrap();
        a.done(&mut cx.t, id);
    }
    a.until(&mut cx.t, "the connection closes", |e| {
        matches!(e, Event::Closed { .. })
    });
    b.close();
}

fn confirms_and_errors(cx: &mut Ctx) {
    let mut c = cx.client();
    let q = cx.name("full");
    declare_exclusive(&mut c, cx, &q, FieldTable::default());
    publish(&mut c, "", &q, &plain(), "before confirms");
    confirm(&mut c, cx);
    for body in ["a", "b", "c"] {
        publish(&mut c, "", &q, &plain(), body);
    }
    confirms(&mut c, cx, 3);
    declare_passive(&mut c, cx, &q);
    cx.t.log("-- delete if empty, not empty");
    let delete = QueueDelete {
        if_empty: true,
        ..QueueDelete::new(&q)
    };
    let id = c.conn.queue_delete(1, &delete).unwrap();
    c.done(&mut cx.t, id);
    reopen(&mut c, cx);
    cx.t.log("-- consume a missing queue");
    let id = c
        .conn
        .basic_consume(1, &Consume::new(cx.name("none")))
        .unwrap();
    c.done(&mut cx.t, id);
    reopen(&mut c, cx);
    cx.t.log("-- purge, then delete");
    let id = c
        .conn
        .queue_purge(1, &nuropb_proto::amqp::QueuePurge::new(&q))
        .unwrap();
    c.done(&mut cx.t, id);
    let id = c.conn.queue_delete(1, &delete).unwrap();
    c.done(&mut cx.t, id);
    c.close();
}

fn connection_errors(cx: &mut Ctx) {
    let mut c = cx.client();
    cx.t.log("-- an unknown exchange type");
    let id = c
        .conn
        .exchange_declare(1, &ExchangeDeclare::new(cx.name("x"), "nope"))
        .unwrap();
    c.done(&mut cx.t, id);
    c.until(&mut cx.t, "the connection closes", |e| {
        matches!(e, Event::Closed { .. })
    });
}

fn short(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

/// A property list with a correlation id and a header table of `entries`.
fn with_table(entries: &[u8]) -> Vec<u8> {
    use nuropb_proto::amqp::properties::flag::*;
    let mut bytes = (HEADERS | CORRELATION_ID).to_be_bytes().to_vec();
    bytes.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    bytes.extend_from_slice(entries);
    short(&mut bytes, b"c-1");
    bytes
}

/// Property lists a publisher may send that the client cannot read in full: RabbitMQ forwards
/// the first kind untouched and closes the connection for the second.
fn unreadable_properties(cx: &mut Ctx) {
    use nuropb_proto::amqp::properties::flag::*;
    let mut deep = Vec::new();
    for _ in 0..40 {
        let mut t = vec![1, b'k', b'F'];
        t.extend_from_slice(&(deep.len() as u32).to_be_bytes());
        t.extend_from_slice(&deep);
        deep = t;
    }
    let mut not_utf8 = (CORRELATION_ID | REPLY_TO).to_be_bytes().to_vec();
    short(&mut not_utf8, b"\xff\xfe");
    short(&mut not_utf8, b"rq");
    let mut reserved = (CORRELATION_ID | RESERVED).to_be_bytes().to_vec();
    short(&mut reserved, b"c-1");
    let forwarded: [(&str, Vec<u8>); 4] = [
        ("nested 40 deep", with_table(&deep)),
        ("a key not UTF-8", with_table(&[2, 0xff, 0xfe, b'V'])),
        ("a correlation id not UTF-8", not_utf8),
        ("a reserved flag bit", reserved),
    ];
    let mut c = cx.client();
    let (dlx, dlq) = dead_letters(&mut c, cx);
    let q = cx.name("raw");
    let arguments = args(&[("x-dead-letter-exchange", long(&dlx))]);
    declare_exclusive(&mut c, cx, &q, arguments);
    confirm(&mut c, cx);
    for (what, bytes) in &forwarded {
        publish_raw(&mut c, &q, bytes, what);
    }
    confirms(&mut c, cx, forwarded.len());
    for _ in &forwarded {
        get(&mut c, cx, &q, false);
    }
    // Rejected, they are dead-lettered with their properties as they came, x-death added.
    for tag in 1..=forwarded.len() as u64 {
        c.conn.basic_reject(1, tag, false).unwrap();
    }
    c.quiet(&mut cx.t, Duration::from_millis(150));
    for _ in &forwarded {
        get(&mut c, cx, &dlq, true);
    }
    delete_exchange(&mut c, cx, &dlx);
    c.close();
    let refused: [(&str, Vec<u8>); 5] = [
        ("a value of type U", with_table(&[1, b'k', b'U', 0, 1])),
        (
            "an unknown type, nested",
            with_table(&[1, b'k', b'F', 0, 0, 0, 3, 1, b'j', b'Z']),
        ),
        ("trailing bytes", {
            let mut b = CORRELATION_ID.to_be_bytes().to_vec();
            short(&mut b, b"c");
            b.extend_from_slice(&[0, 0]);
            b
        }),
        (
            "a continuation flag",
            (CORRELATION_ID | CONTINUATION).to_be_bytes().to_vec(),
        ),
        ("a table longer than the list", {
            let mut b = HEADERS.to_be_bytes().to_vec();
            b.extend_from_slice(&1000u32.to_be_bytes());
            b.extend_from_slice(b"ab");
            b
        }),
    ];
    for (what, bytes) in &refused {
        let mut c = cx.client();
        cx.t.log(format!("-- {what}"));
        declare_exclusive(&mut c, cx, &q, FieldTable::default());
        publish_raw(&mut c, &q, bytes, what);
        c.until(&mut cx.t, "the connection closes", |e| {
            matches!(e, Event::Closed { .. })
        });
    }
}

fn prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("conf{}x{nanos:x}-", std::process::id())
}

fn run(target: &Target, scenario: Scenario) -> Vec<String> {
    let mut cx = Ctx::new(target.clone(), prefix());
    scenario(&mut cx);
    cx.t.lines
}

#[test]
fn the_testkit_broker_answers_every_scenario_as_rabbitmq_does() {
    let rabbit = Target::rabbitmq();
    let server = nuropb_testkit::server::spawn("127.0.0.1:0").expect("the testkit server");
    let testkit = Target {
        name: "testkit",
        addr: server.addr.to_string(),
        user: "guest".into(),
        password: "guest".into(),
        vhost: rabbit.vhost.clone(),
    };
    let mut divergences = Vec::new();
    for (name, scenario) in SCENARIOS {
        let truth = run(&rabbit, *scenario);
        let ours = run(&testkit, *scenario);
        if std::env::var_os("NUROPB_CONFORMANCE_PRINT").is_some() {
            eprintln!("== {name} (RabbitMQ)\n{}", truth.join("\n"));
        }
        assert!(
            truth.len() > 3,
            "{name}: RabbitMQ's transcript is too short: {truth:?}"
        );
        if truth != ours {
            let mut report = format!("scenario {name} diverges:\n");
            for i in 0..truth.len().max(ours.len()) {
                let (a, b) = (truth.get(i), ours.get(i));
                let mark = if a == b { " " } else { "!" };
                report.push_str(&format!(
                    "{mark} rabbitmq: {}\n{mark} testkit:  {}\n",
                    a.map_or("<none>", String::as_str),
                    b.map_or("<none>", String::as_str)
                ));
            }
            divergences.push(report);
        }
    }
    server.shutdown();
    assert!(divergences.is_empty(), "{}", divergences.join("\n"));
}
