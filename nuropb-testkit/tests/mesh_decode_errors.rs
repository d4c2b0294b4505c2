//! Messages a service cannot read, published by hand from a plain AMQP client (NUROPB-WIRE.md
//! §4.1, quirks 6 and 7 fixed): every kind is rejected exactly once, without requeue (so it is
//! dead-lettered, never poison), answered with a `NuropbMessageError` when it has a reply-to —
//! except a response, which nobody waits for — and the service's channel stays open.

mod mesh_support;

use mesh_support::*;
use nuropb_proto::amqp::{self, AMQPValue, Consume, Headers, Publish, QueueDeclare};
use nuropb_proto::mesh::Request;
use nuropb_testkit::sim::NodeId;
use serde_json::{Value, json};

const REPLY: &str = "raw-replies";

struct Case {
    name: &'static str,
    headers: Option<Headers>,
    body: Vec<u8>,
    answered: bool,
}

fn cases() -> Vec<Case> {
    let good = request_body("echo", json!({"a": 1}));
    vec![
        Case {
            name: "unsupported protocol",
            headers: Some(headers("request", "0.2.0", "")),
            body: good.clone(),
            answered: true,
        },
        Case {
            name: "not JSON",
            headers: Some(headers("request", "0.1.1", "")),
            body: b"{not json".to_vec(),
            answered: true,
        },
        Case {
            name: "not an object",
            headers: Some(headers("request", "0.1.1", "")),
            body: b"[1, 2]".to_vec(),
            answered: true,
        },
        Case {
            name: "unknown nuropb_type",
            headers: Some(headers("bogus", "0.1.1", "")),
            body: good.clone(),
            answered: true,
        },
        Case {
            name: "undecryptable",
            headers: Some(headers("request", "0.1.1", "yes")),
            body: b"bm90IGEga2V5.bm90IGEgdG9rZW4=".to_vec(),
            answered: true,
        },
        Case {
            name: "no headers at all",
            headers: None,
            body: good.clone(),
            answered: true,
        },
        Case {
            name: "missing fields",
            headers: Some(headers("request", "0.1.1", "")),
            body: br#"{"tag": "request", "service": "svc"}"#.to_vec(),
            answered: true,
        },
        Case {
            name: "a response on the service queue",
            headers: Some(headers("response", "0.1.1", "")),
            body: br#"{"tag": "response", "result": 1, "error": null}"#.to_vec(),
            answered: false,
        },
    ]
}

/// A raw client consuming its own reply queue.
fn raw_with_replies(m: &mut Mesh) -> NodeId {
    let raw = raw_client(&mut m.sim, "raw");
    let conn = m.sim.client(raw);
    conn.queue_declare(
        1,
        &QueueDeclare {
            exclusive: true,
            ..QueueDeclare::new(REPLY)
        },
    )
    .unwrap();
    conn.basic_consume(
        1,
        &Consume {
            no_ack: true,
            consumer_tag: "replies".into(),
            ..Consume::new(REPLY)
        },
    )
    .unwrap();
    wait_event(&mut m.sim, raw, "consuming replies", |e| {
        matches!(
            e,
            amqp::Event::Completed {
                result: Ok(amqp::Completion::ConsumeStarted { .. }),
                ..
            }
        )
    });
    raw
}

fn publish(m: &mut Mesh, raw: NodeId, case: &Case, correlation_id: &str, reply_to: &str) {
    let properties = props(case.headers.clone(), correlation_id, reply_to);
    m.sim
        .client(raw)
        .basic_publish(
            1,
            &Publish::new("nuropb-rpc-exchange", SVC),
            &properties,
            &case.body,
        )
        .unwrap();
    m.sim.settle();
}

fn header(properties: &amqp::Properties, key: &str) -> String {
    match properties.headers.as_ref().and_then(|h| h.get(key)) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => format!("{other:?}"),
    }
}

#[test]
fn every_unreadable_message_is_rejected_once_answered_and_the_channel_stays_open() {
    for (i, case) in cases().into_iter().enumerate() {
        let mut m = Mesh::new(100 + i as u64);
        let raw = raw_with_replies(&mut m);
        let before = m.sim.tap().unwrap().stats();
        publish(&mut m, raw, &case, "corr-bad", REPLY);
        let tap = m.sim.tap().unwrap();
        let s = tap.stats();
        let name = case.name;
        assert_eq!(tap.violations(), &[] as &[String], "{name}");
        assert_eq!(
            s.deliveries - before.deliveries,
            1,
            "{name}: delivered once"
        );
        assert_eq!(s.rejects - before.rejects, 1, "{name}: rejected once");
        assert_eq!(
            (s.requeues, s.acks, s.redeliveries),
            (0, 0, 0),
            "{name}: never requeued"
        );
        assert!(
            m.sim.record(m.service).calls.is_empty(),
            "{name}: no handler"
        );
        // Dead-lettered, not left in the queue as poison.
        let queue = m.sim.broker().queue("/", "nuropb-svc-sq").unwrap();
        assert_eq!(
            (queue.messages_ready, queue.messages_unacknowledged),
            (0, 0),
            "{name}"
        );
        assert_eq!(
            m.sim.broker().messages("/", "nuropb-dl-queue").len(),
            1,
            "{name}"
        );
        // Answered (or not).
        let replies: Vec<amqp::Delivery> = m
            .sim
            .client_events(raw)
            .drain(..)
            .filter_map(|e| match e {
                amqp::Event::Delivery(d) => Some(d),
                _ => None,
            })
            .collect();
        if case.answered {
            assert_eq!(replies.len(), 1, "{name}: one answer");
            let reply = &replies[0];
            assert_eq!(
                reply.properties.correlation_id.as_ref().map(|c| c.as_str()),
                Some("corr-bad")
            );
            assert_eq!(header(&reply.properties, "nuropb_type"), "response");
            assert_eq!(header(&reply.properties, "encrypted"), "", "{name}");
            let body: Value = serde_json::from_slice(&reply.body).unwrap();
            assert_eq!(
                body["error"]["error"], "NuropbMessageError",
                "{name}: {body}"
            );
            assert_eq!(body["result"], Value::Null);
        } else {
            assert!(replies.is_empty(), "{name}: not answered");
        }
        // The service's channel stayed open: no reconnect, no second startup, and it serves.
        let record = m.sim.record(m.service);
        assert!(record.disconnects.is_empty(), "{name}");
        assert_eq!(record.readies, 1, "{name}: the channel was never reopened");
        let id = m.sim.request(m.client, Request::new(SVC, "echo")).unwrap();
        let client = m.client;
        m.sim
            .run_until(name, T, |s| s.response(client, id).is_some());
        assert!(m.sim.response(m.client, id).unwrap().is_ok(), "{name}");
        assert!(m.sim.endpoint(m.service).footprint().is_idle(), "{name}");
    }
}

#[test]
fn an_unreadable_message_without_reply_to_is_rejected_and_not_answered() {
    let mut m = Mesh::new(120);
    let raw = raw_with_replies(&mut m);
    let case = &cases()[1];
    let properties = amqp::Properties {
        reply_to: None,
        ..props(case.headers.clone(), "corr-x", "")
    };
    m.sim
        .client(raw)
        .basic_publish(
            1,
            &Publish::new("nuropb-rpc-exchange", SVC),
            &properties,
            &case.body,
        )
        .unwrap();
    m.sim.settle();
    let s = m.sim.tap().unwrap().stats();
    assert_eq!((s.deliveries, s.rejects, s.requeues), (1, 1, 0));
    assert!(
        !m.sim
            .client_events(raw)
            .iter()
            .any(|e| matches!(e, amqp::Event::Delivery(_)))
    );
    assert_eq!(m.sim.record(m.service).readies, 1);
}

#[test]
fn a_readable_hand_made_request_is_served() {
    // The control: the same publisher and properties, a good body, is answered with a result.
    let mut m = Mesh::new(121);
    let raw = raw_with_replies(&mut m);
    let case = Case {
        name: "good",
        headers: Some(headers("request", "0.1.1", "")),
        body: br#"{"tag":"request","service":"svc","method":"echo","params":{"k":2},"correlation_id":"x","context":{},"trace_id":null}"#.to_vec(),
        answered: true,
    };
    publish(&mut m, raw, &case, "corr-good", REPLY);
    let reply = m
        .sim
        .client_events(raw)
        .drain(..)
        .find_map(|e| match e {
            amqp::Event::Delivery(d) => Some(d),
            _ => None,
        })
        .expect("an answer");
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["result"], json!({"k": 2}));
    assert_eq!(body["error"], Value::Null);
    assert_eq!(
        body["correlation_id"], "corr-good",
        "the property wins over the body's id"
    );
    assert_eq!(m.sim.tap().unwrap().stats().acks, 1);
}
