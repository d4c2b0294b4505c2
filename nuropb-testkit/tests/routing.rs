//! Routing per exchange type: direct, fanout, topic (`*`, `#`), headers, the default exchange,
//! exchange-to-exchange bindings, alternate exchanges; declares, passive declares, deletes.

mod support;

use amq_protocol::protocol::{AMQPClass, exchange, queue};
use amq_protocol::types::FieldTable;
use nuropb_testkit::broker::{BrokerConfig, DestinationKind};
use support::*;

/// Declares queues `names` bound to `x` with `keys`, consuming them all with no_ack on channel 1.
fn setup(h: &mut Harness, c: &mut Client, x: &str, kind: &str, bindings: &[(&str, &str)]) {
    c.declare_exchange(h, 1, x, kind);
    for (q, key) in bindings {
        if h.broker.queue("/", q).is_none() {
            c.declare_queue(h, 1, q, FieldTable::default());
        }
        c.bind(h, 1, q, x, key);
    }
}

/// Which queues hold which messages.
fn depth(h: &Harness, q: &str) -> Vec<String> {
    h.broker
        .messages("/", q)
        .into_iter()
        .map(|m| String::from_utf8(m.body).unwrap())
        .collect()
}

#[test]
fn direct_exchange_routes_by_exact_key() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    setup(
        &mut h,
        &mut c,
        "d",
        "direct",
        &[("q1", "a"), ("q2", "a"), ("q3", "b")],
    );
    c.publish(&mut h, 1, "d", "a", "to-a");
    c.publish(&mut h, 1, "d", "b", "to-b");
    c.publish(&mut h, 1, "d", "c", "to-nobody");
    assert_eq!(depth(&h, "q1"), ["to-a"]);
    assert_eq!(depth(&h, "q2"), ["to-a"]);
    assert_eq!(depth(&h, "q3"), ["to-b"]);
}

#[test]
fn fanout_ignores_the_key() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    setup(&mut h, &mut c, "f", "fanout", &[("q1", "x"), ("q2", "")]);
    c.publish(&mut h, 1, "f", "whatever", "m");
    assert_eq!(depth(&h, "q1"), ["m"]);
    assert_eq!(depth(&h, "q2"), ["m"]);
}

#[test]
fn topic_wildcards() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    setup(
        &mut h,
        &mut c,
        "t",
        "topic",
        &[
            ("star", "order.*"),
            ("hash", "order.#"),
            ("all", "#"),
            ("mid", "*.created.#"),
        ],
    );
    for key in [
        "order",
        "order.created",
        "order.created.eu",
        "user.created",
        "",
    ] {
        c.publish(&mut h, 1, "t", key, key);
    }
    assert_eq!(depth(&h, "star"), ["order.created"]);
    assert_eq!(
        depth(&h, "hash"),
        ["order", "order.created", "order.created.eu"]
    );
    assert_eq!(
        depth(&h, "all"),
        [
            "order",
            "order.created",
            "order.created.eu",
            "user.created",
            ""
        ]
    );
    assert_eq!(
        depth(&h, "mid"),
        ["order.created", "order.created.eu", "user.created"]
    );
}

#[test]
fn a_queue_bound_twice_gets_one_copy() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    setup(&mut h, &mut c, "t", "topic", &[("q", "a.*"), ("q", "#")]);
    c.publish(&mut h, 1, "t", "a.b", "once");
    assert_eq!(depth(&h, "q"), ["once"]);
}

#[test]
fn default_exchange_routes_to_the_queue_named_by_the_key() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "rq", FieldTable::default());
    c.publish(&mut h, 1, "", "rq", "direct to queue");
    c.publish(&mut h, 1, "", "missing", "dropped");
    assert_eq!(depth(&h, "rq"), ["direct to queue"]);
    // The implicit binding is listed, as RabbitMQ lists it.
    assert!(h.broker.bindings("/").iter().any(|b| b.source.is_empty()
        && b.destination == "rq"
        && b.routing_key == "rq"
        && b.destination_kind == DestinationKind::Queue));
}

#[test]
fn headers_exchange_and_amq_defaults() {
    let mut h = Harness::new();
    let names: Vec<String> = h
        .broker
        .exchanges("/")
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert_eq!(
        names,
        [
            "",
            "amq.direct",
            "amq.fanout",
            "amq.headers",
            "amq.match",
            "amq.rabbitmq.trace",
            "amq.topic"
        ]
    );
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "hq", FieldTable::default());
    c.send(
        &mut h,
        1,
        AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: "hq".into(),
            exchange: "amq.headers".into(),
            routing_key: "".into(),
            nowait: false,
            arguments: table(&[
                ("x-match", long("any")),
                ("kind", long("a")),
                ("other", long("b")),
            ]),
        })),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Queue(queue::AMQPMethod::BindOk(queue::BindOk {})),
    );
    let with = |k: &str, v: &str| nuropb_proto::amqp::Properties {
        headers: Some({
            let mut hd = nuropb_proto::amqp::Headers::default();
            hd.insert(k, long(v));
            hd
        }),
        ..Default::default()
    };
    c.publish_with(
        &mut h,
        1,
        "amq.headers",
        "",
        false,
        &with("kind", "a"),
        "match",
    );
    c.publish_with(
        &mut h,
        1,
        "amq.headers",
        "",
        false,
        &with("kind", "z"),
        "no match",
    );
    assert_eq!(depth(&h, "hq"), ["match"]);
}

#[test]
fn exchange_to_exchange_and_alternate_exchange() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_exchange(&mut h, 1, "src", "direct");
    c.declare_exchange(&mut h, 1, "dst", "fanout");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    c.bind(&mut h, 1, "q", "dst", "");
    c.send(
        &mut h,
        1,
        AMQPClass::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
            destination: "dst".into(),
            source: "src".into(),
            routing_key: "k".into(),
            nowait: false,
            arguments: FieldTable::default(),
        })),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
    );
    // A cycle back to src must not loop.
    c.send(
        &mut h,
        1,
        AMQPClass::Exchange(exchange::AMQPMethod::Bind(exchange::Bind {
            destination: "src".into(),
            source: "dst".into(),
            routing_key: "".into(),
            nowait: false,
            arguments: FieldTable::default(),
        })),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Exchange(exchange::AMQPMethod::BindOk(exchange::BindOk {})),
    );
    c.publish(&mut h, 1, "src", "k", "via dst");
    c.publish(&mut h, 1, "src", "other", "nowhere");
    assert_eq!(depth(&h, "q"), ["via dst"]);

    // alternate-exchange catches what the exchange cannot route.
    c.send(
        &mut h,
        1,
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: "with-ae".into(),
            kind: "direct".into(),
            passive: false,
            durable: false,
            auto_delete: false,
            internal: false,
            nowait: false,
            arguments: table(&[("alternate-exchange", long("dst"))]),
        })),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
    );
    c.publish(&mut h, 1, "with-ae", "unbound", "caught");
    assert_eq!(depth(&h, "q"), ["via dst", "caught"]);
}

#[test]
fn passive_declares_and_deletes() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.send(&mut h, 1, exchange_declare("nope", "direct", true));
    c.expect_channel_close(
        &mut h,
        1,
        404,
        "NOT_FOUND - no exchange 'nope' in vhost '/'",
        (40, 10),
    );
    c.open_channel(&mut h, 2);
    c.send(
        &mut h,
        2,
        queue_declare("nope", true, false, false, FieldTable::default()),
    );
    c.expect_channel_close(
        &mut h,
        2,
        404,
        "NOT_FOUND - no queue 'nope' in vhost '/'",
        (50, 10),
    );

    c.open_channel(&mut h, 3);
    c.declare_exchange(&mut h, 3, "x", "topic");
    c.send(
        &mut h,
        3,
        exchange_declare("x", "anything-goes-when-passive", true),
    );
    c.expect(
        &mut h,
        3,
        AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
    );
    c.declare_queue(&mut h, 3, "q", FieldTable::default());
    c.bind(&mut h, 3, "q", "x", "#");
    let delete = |if_unused| {
        AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
            exchange: "x".into(),
            if_unused,
            nowait: false,
        }))
    };
    c.send(&mut h, 3, delete(true));
    c.expect_channel_close(
        &mut h,
        3,
        406,
        "PRECONDITION_FAILED - exchange 'x' in vhost '/' in use",
        (40, 20),
    );
    c.open_channel(&mut h, 4);
    c.send(&mut h, 4, delete(false));
    c.expect(
        &mut h,
        4,
        AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
    );
    assert!(h.broker.exchanges("/").iter().all(|x| x.name != "x"));
    assert!(
        h.broker.bindings("/").iter().all(|b| b.source != "x"),
        "bindings go with it"
    );
    // Deleting a missing exchange is fine, as on RabbitMQ 3.10.
    c.send(&mut h, 4, delete(false));
    c.expect(
        &mut h,
        4,
        AMQPClass::Exchange(exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {})),
    );
    c.send(
        &mut h,
        4,
        AMQPClass::Exchange(exchange::AMQPMethod::Delete(exchange::Delete {
            exchange: "amq.direct".into(),
            if_unused: false,
            nowait: false,
        })),
    );
    c.expect_channel_close(
        &mut h,
        4,
        403,
        "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed",
        (40, 20),
    );
}

#[test]
fn declare_refusals() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.send(&mut h, 1, exchange_declare("", "direct", false));
    c.expect_channel_close(
        &mut h,
        1,
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange",
        (40, 10),
    );
    c.open_channel(&mut h, 2);
    c.send(&mut h, 2, exchange_declare("amq.foo", "direct", false));
    c.expect_channel_close(
        &mut h,
        2,
        403,
        "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'",
        (40, 10),
    );
    c.open_channel(&mut h, 3);
    c.declare_exchange(&mut h, 3, "x", "direct");
    c.send(&mut h, 3, exchange_declare("x", "fanout", false));
    c.expect_channel_close(
        &mut h,
        3,
        406,
        "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': received \
         'fanout' but current is 'direct'",
        (40, 10),
    );
    c.open_channel(&mut h, 4);
    c.send(&mut h, 4, exchange_declare("y", "foo", false));
    c.expect_connection_close(
        &mut h,
        503,
        "COMMAND_INVALID - unknown exchange type 'foo'",
        (40, 10),
    );
}

#[test]
fn mesh_exchanges_can_be_predeclared() {
    let mut h = Harness::with_config(BrokerConfig {
        declare_mesh_exchanges: true,
        ..BrokerConfig::default()
    });
    let _c = h.client("mesh-vhost");
    let xs = h.broker.exchanges("mesh-vhost");
    for (name, kind) in [
        ("nuropb-rpc-exchange", "direct"),
        ("nuropb-events-exchange", "topic"),
        ("nuropb-dl-exchange", "fanout"),
    ] {
        let x = xs.iter().find(|x| x.name == name).expect(name);
        assert_eq!((x.kind.as_str(), x.durable), (kind, true));
    }
}

#[test]
fn unbind_and_auto_delete_exchanges() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.send(
        &mut h,
        1,
        AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: "ad".into(),
            kind: "direct".into(),
            passive: false,
            durable: false,
            auto_delete: true,
            internal: false,
            nowait: false,
            arguments: FieldTable::default(),
        })),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Exchange(exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {})),
    );
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    c.bind(&mut h, 1, "q", "ad", "k");
    c.send(
        &mut h,
        1,
        AMQPClass::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
            queue: "q".into(),
            exchange: "ad".into(),
            routing_key: "k".into(),
            arguments: FieldTable::default(),
        })),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Queue(queue::AMQPMethod::UnbindOk(queue::UnbindOk {})),
    );
    assert!(
        h.broker.exchanges("/").iter().all(|x| x.name != "ad"),
        "an auto-delete exchange goes with its last binding"
    );
}
