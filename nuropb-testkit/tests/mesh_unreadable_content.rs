//! A message the core cannot read is that message's problem, never the connection's. Property
//! lists that RabbitMQ forwards but the client cannot read in full (headers nested deeper than
//! it reads, keys or strings that are not UTF-8, reserved flag bits) and bodies over the
//! endpoint's limit, published raw to a service and to a client: each is settled alone —
//! rejected once and dead-lettered, answered with a `NuropbMessageError` where it says where to
//! — and the connection, the channel, the consumer and every other message and request go on.
//! Also: the reconnect backoff grows under a connection that keeps failing right after start,
//! and JSON nests as deep as Python reads it.

mod mesh_support;

use mesh_support::*;
use nuropb_proto::amqp::properties::flag;
use nuropb_proto::amqp::{self, Consume, Publish, QueueDeclare};
use nuropb_proto::mesh::{Arrival, EndpointConfig, Request};
use nuropb_proto::{ErrorKind, NuropbError};
use nuropb_testkit::sim::{NodeId, Sim, SimConfig};
use serde_json::{Value, json};
use std::time::Duration;

const REPLY: &str = "raw-replies";
/// The service's limit on bodies it receives.
const MAX_BODY: u64 = 64 * 1024;

/// The mesh of `mesh_support`, its service limited to bodies of [`MAX_BODY`].
fn mesh(seed: u64) -> Mesh {
    let mut sim = Sim::new(seed, SimConfig::default());
    let amqp = amqp::Config {
        max_body_size: MAX_BODY,
        ..amqp::Config::new("guest", "guest", "/")
    };
    let service = sim.add_endpoint_with("svc", service_config("svc1", seed), amqp, Some(handler()));
    let client = sim.add_endpoint(
        "client",
        EndpointConfig::client("/", "client1", seed ^ 1),
        None,
    );
    sim.run_until("the service and the client are ready", T, |s| {
        s.record(service).readies == 1 && s.record(client).readies == 1
    });
    Mesh {
        sim,
        service,
        client,
    }
}

/// A raw client consuming its own reply queue.
fn raw_with_replies(m: &mut Mesh) -> NodeId {
    let raw = raw_client(&mut m.sim, "raw");
    let conn = m.sim.client(raw);
    let declare = QueueDeclare {
        exclusive: true,
        ..QueueDeclare::new(REPLY)
    };
    conn.queue_declare(1, &declare).unwrap();
    let consume = Consume {
        no_ack: true,
        consumer_tag: "replies".into(),
        ..Consume::new(REPLY)
    };
    conn.basic_consume(1, &consume).unwrap();
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

fn short(out: &mut Vec<u8>, s: &[u8]) {
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

/// A NuroPb request's property list, written by hand: content type, the five headers with
/// `extra` (raw entries) after them, correlation id, reply-to, then an app id.
fn request_properties(extra: &[u8], correlation_id: &[u8], app_id: &[u8], flags: u16) -> Vec<u8> {
    let mut encoded = Vec::new();
    props(Some(headers("request", "0.1.1", "")), "unused", "unused").encode(&mut encoded);
    // The headers of a well-formed list, entry bytes only.
    let start = 2 + 1 + "application/json".len();
    let len = u32::from_be_bytes(encoded[start..start + 4].try_into().unwrap()) as usize;
    let mut table = encoded[start + 4..start + 4 + len].to_vec();
    table.extend_from_slice(extra);
    let mut bytes = (flag::CONTENT_TYPE
        | flag::HEADERS
        | flag::CORRELATION_ID
        | flag::REPLY_TO
        | flag::APP_ID
        | flags)
        .to_be_bytes()
        .to_vec();
    short(&mut bytes, b"application/json");
    bytes.extend_from_slice(&(table.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&table);
    short(&mut bytes, correlation_id);
    short(&mut bytes, REPLY.as_bytes());
    short(&mut bytes, app_id);
    bytes
}

/// `{"k": {"k": … }}` as a header entry, `levels` tables deep.
fn nested_entry(levels: usize) -> Vec<u8> {
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..levels {
        let mut t = vec![1, b'k', b'F'];
        t.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        t.extend_from_slice(&inner);
        inner = t;
    }
    inner
}

struct Case {
    name: &'static str,
    properties: Vec<u8>,
    body: Vec<u8>,
    /// What the answer's description says.
    says: &'static str,
}

/// Every kind of content the service cannot read that RabbitMQ forwards (see the conformance
/// run), and a body over the service's limit.
fn cases() -> Vec<Case> {
    let body = request_body("echo", json!({"a": 1}));
    let bad_key = [2, 0xff, 0xfe, b'V'];
    vec![
        Case {
            name: "headers nested 40 deep",
            properties: request_properties(&nested_entry(40), b"corr-bad", b"app", 0),
            body: body.clone(),
            says: "nest deeper than 16 levels",
        },
        Case {
            name: "a header key not UTF-8",
            properties: request_properties(&bad_key, b"corr-bad", b"app", 0),
            body: body.clone(),
            says: "header key is not UTF-8",
        },
        Case {
            name: "an app id not UTF-8",
            properties: request_properties(&[], b"corr-bad", b"\xc3\x28", 0),
            body: body.clone(),
            says: "app_id is not UTF-8",
        },
        Case {
            name: "a reserved flag bit",
            properties: request_properties(&[], b"corr-bad", b"app", flag::RESERVED),
            body: body.clone(),
            says: "unused bits",
        },
        Case {
            name: "a body over the limit",
            properties: request_properties(&[], b"corr-bad", b"app", 0),
            body: vec![b' '; MAX_BODY as usize + 1],
            says: "over the limit",
        },
    ]
}

fn publish_raw(m: &mut Mesh, raw: NodeId, routing_key: &str, properties: &[u8], body: &[u8]) {
    let exchange = if routing_key == SVC {
        "nuropb-rpc-exchange"
    } else {
        ""
    };
    m.sim
        .client(raw)
        .basic_publish_raw(1, &Publish::new(exchange, routing_key), properties, body)
        .unwrap();
}

fn replies(m: &mut Mesh, raw: NodeId) -> Vec<amqp::Delivery> {
    m.sim
        .client_events(raw)
        .drain(..)
        .filter_map(|e| match e {
            amqp::Event::Delivery(d) => Some(d),
            _ => None,
        })
        .collect()
}

/// The service serves, on the connection and channel it started with.
fn still_serving(m: &mut Mesh, what: &str) {
    let id = m
        .sim
        .request(
            m.client,
            Request::new(SVC, "echo").params(json!({"x": what})),
        )
        .unwrap();
    let client = m.client;
    m.sim
        .run_until(what, T, |s| s.response(client, id).is_some());
    assert_eq!(ok_of(m.sim.response(m.client, id)), json!({"x": what}));
    let record = m.sim.record(m.service);
    assert!(
        record.disconnects.is_empty(),
        "{what}: {:?}",
        record.disconnects
    );
    assert_eq!(record.readies, 1, "{what}: never restarted");
}

#[test]
fn every_unreadable_content_is_rejected_once_dead_lettered_and_answered() {
    for (i, case) in cases().into_iter().enumerate() {
        let name = case.name;
        let mut m = mesh(200 + i as u64);
        let raw = raw_with_replies(&mut m);
        let before = m.sim.tap().unwrap().stats();
        publish_raw(&mut m, raw, SVC, &case.properties, &case.body);
        m.sim.settle();
        let tap = m.sim.tap().unwrap();
        let s = tap.stats();
        assert_eq!(tap.violations(), &[] as &[String], "{name}");
        assert_eq!(
            s.deliveries - before.deliveries,
            1,
            "{name}: delivered once"
        );
        assert_eq!(s.rejects - before.rejects, 1, "{name}: rejected once");
        assert_eq!(
            (s.requeues, s.redeliveries),
            (0, 0),
            "{name}: never requeued"
        );
        assert!(
            m.sim.record(m.service).calls.is_empty(),
            "{name}: no handler"
        );
        let queue = m.sim.broker().queue("/", "nuropb-svc-sq").unwrap();
        assert_eq!(
            (queue.messages_ready, queue.messages_unacknowledged),
            (0, 0)
        );
        let dead = m.sim.broker().messages("/", "nuropb-dl-queue");
        assert_eq!(dead.len(), 1, "{name}: dead-lettered once");
        // Answered by its reply-to and correlation id, with what was wrong.
        let replies = replies(&mut m, raw);
        assert_eq!(replies.len(), 1, "{name}: one answer");
        let reply = &replies[0];
        assert_eq!(
            reply.properties.correlation_id.as_ref().map(|c| c.as_str()),
            Some("corr-bad")
        );
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(
            body["error"]["error"], "NuropbMessageError",
            "{name}: {body}"
        );
        let description = body["error"]["description"].as_str().unwrap();
        assert!(description.contains(case.says), "{name}: {description}");
        // Counted and reported.
        assert_eq!(m.sim.endpoint(m.service).unreadable(), 1, "{name}");
        let reported = &m.sim.record(m.service).unreadable;
        assert_eq!(reported.len(), 1, "{name}");
        assert_eq!(reported[0].arrival, Arrival::ServiceQueue);
        assert_eq!(reported[0].correlation_id.as_deref(), Some("corr-bad"));
        assert!(reported[0].answered, "{name}");
        still_serving(&mut m, name);
        assert!(m.sim.endpoint(m.service).footprint().is_idle(), "{name}");
    }
}

#[test]
fn without_a_readable_correlation_id_it_is_rejected_and_not_answered() {
    let mut m = mesh(210);
    let raw = raw_with_replies(&mut m);
    let properties = request_properties(&nested_entry(40), b"\xff\xfe", b"app", 0);
    publish_raw(&mut m, raw, SVC, &properties, b"{}");
    m.sim.settle();
    let s = m.sim.tap().unwrap().stats();
    assert_eq!((s.deliveries, s.rejects, s.requeues), (1, 1, 0));
    assert!(replies(&mut m, raw).is_empty());
    let reported = &m.sim.record(m.service).unreadable;
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].correlation_id, None);
    assert!(!reported[0].answered);
    still_serving(&mut m, "no correlation id");
}

#[test]
fn a_poison_message_at_the_head_of_the_queue_holds_up_nothing() {
    let mut m = mesh(211);
    let raw = raw_with_replies(&mut m);
    // The service goes, so the bad messages wait at the head of its queue with valid requests
    // behind them; then a new instance starts.
    let now = m.sim.now();
    m.sim.endpoint_mut(m.service).shutdown(Duration::ZERO, now);
    m.sim.settle();
    for case in cases() {
        publish_raw(&mut m, raw, SVC, &case.properties, &case.body);
    }
    m.sim.settle();
    let ids: Vec<_> = (0..50)
        .map(|n| {
            m.sim
                .request(
                    m.client,
                    Request::new(SVC, "echo").params(json!({ "n": n })),
                )
                .unwrap()
        })
        .collect();
    m.sim.settle();
    let queue = m.sim.broker().queue("/", "nuropb-svc-sq").unwrap();
    assert_eq!(queue.messages_ready, 55, "all waiting");
    let waiting = m.sim.broker().messages("/", "nuropb-svc-sq");
    let correlation_id = |i: usize| {
        waiting[i]
            .properties
            .correlation_id
            .as_ref()
            .map(|c| c.as_str())
    };
    assert!(
        (0..5).all(|i| correlation_id(i) == Some("corr-bad")),
        "the bad ones at the head"
    );
    // A new instance of the service starts on the full queue.
    let second = m
        .sim
        .add_endpoint("svc2", service_config("svc2", 7), Some(handler()));
    let client = m.client;
    m.sim.run_until("every request is answered", T, |s| {
        ids.iter().all(|id| s.response(client, *id).is_some())
    });
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(ok_of(m.sim.response(m.client, *id)), json!({ "n": n }));
    }
    m.sim.settle();
    let s = m.sim.tap().unwrap().stats();
    assert_eq!(m.sim.broker().messages("/", "nuropb-dl-queue").len(), 5);
    assert_eq!((s.requeues, s.redeliveries), (0, 0));
    assert_eq!(m.sim.endpoint(second).unreadable(), 5);
    assert!(m.sim.record(second).disconnects.is_empty());
    assert_eq!(m.sim.record(second).readies, 1);
    assert_eq!(replies(&mut m, raw).len(), 5, "each bad one answered");
}

#[test]
fn a_client_drops_unreadable_responses_and_fails_no_request() {
    let mut m = mesh(212);
    let raw = raw_client(&mut m.sim, "raw");
    let queue = m.sim.endpoint(m.client).response_queue().to_owned();
    // A request the service takes 10 s to answer, and one it never answers.
    let slow = m
        .sim
        .request(
            m.client,
            Request::new(SVC, "slow")
                .params(json!({"k": 1}))
                .correlation_id("slow-1"),
        )
        .unwrap();
    let hung = m
        .sim
        .request(
            m.client,
            Request::new(SVC, "hang")
                .correlation_id("hang-1")
                .timeout(Duration::from_secs(20)),
        )
        .unwrap();
    m.sim.run_for(Duration::from_secs(1));
    // Unreadable responses naming both requests, and one naming nobody.
    for (correlation_id, extra, app_id) in [
        (&b"slow-1"[..], nested_entry(40), &b"app"[..]),
        (b"hang-1", vec![2, 0xff, 0xfe, b'V'], b"app"),
        (b"nobody", vec![], b"\xc3\x28"),
    ] {
        let properties = request_properties(&extra, correlation_id, app_id, 0);
        publish_raw(&mut m, raw, &queue, &properties, b"{}");
    }
    m.sim.run_for(Duration::from_secs(1));
    assert_eq!(m.sim.response(m.client, slow), None, "still waiting");
    assert_eq!(m.sim.endpoint(m.client).unreadable(), 3);
    let reported = &m.sim.record(m.client).unreadable;
    assert!(
        reported
            .iter()
            .all(|u| u.arrival == Arrival::ResponseQueue && !u.answered)
    );
    // The real answer arrives and is taken.
    let client = m.client;
    m.sim
        .run_until("the slow answer", T, |s| s.response(client, slow).is_some());
    assert_eq!(ok_of(m.sim.response(m.client, slow)), json!({"k": 1}));
    // The one that never comes times out, saying what came instead.
    m.sim
        .run_until("the deadline", T, |s| s.response(client, hung).is_some());
    let error = error_of(m.sim.response(m.client, hung));
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert!(
        error.description.contains("could not be read") && error.description.contains("UTF-8"),
        "{error:?}"
    );
    let record = m.sim.record(m.client);
    assert!(record.disconnects.is_empty());
    assert_eq!(record.readies, 1);
}

#[test]
fn a_connection_that_fails_right_after_start_backs_off_to_a_few_reconnects_a_minute() {
    let mut m = Mesh::new(213);
    // For ten minutes, the service's connection is dropped as soon as it is ready.
    let service = m.service;
    let start = m.sim.elapsed();
    let mut readies_by_minute = [0u32; 10];
    let mut seen = m.sim.record(service).readies;
    assert!(m.sim.drop_connection(service));
    while m.sim.elapsed() - start < Duration::from_secs(600) {
        m.sim.run_for(Duration::from_millis(50));
        let readies = m.sim.record(service).readies;
        if readies > seen {
            let minute = ((m.sim.elapsed() - start).as_secs() / 60) as usize;
            readies_by_minute[minute.min(9)] += readies - seen;
            seen = readies;
            assert!(m.sim.drop_connection(service));
        }
    }
    let total: u32 = readies_by_minute.iter().sum();
    println!("reconnects per minute under a connection dropped once ready: {readies_by_minute:?}");
    // 100 ms doubling to 30 s, with jitter: about ten in the first minute, then two to four.
    assert!(readies_by_minute[0] <= 12, "{readies_by_minute:?}");
    for (minute, n) in readies_by_minute.iter().enumerate().skip(1) {
        assert!(*n <= 5, "minute {minute}: {readies_by_minute:?}");
    }
    assert!(total >= 10, "it kept reconnecting: {readies_by_minute:?}");
    // Once a connection stays up for the healthy period, the next outage starts over quickly.
    m.sim
        .run_until("ready again", Duration::from_secs(60), |s| {
            s.endpoint(service).phase() == nuropb_proto::mesh::Phase::Ready
        });
    m.sim.run_for(Duration::from_secs(31));
    let readies = m.sim.record(service).readies;
    assert!(m.sim.drop_connection(service));
    let dropped = m.sim.elapsed();
    m.sim
        .run_until("back at once", Duration::from_secs(5), |s| {
            s.record(service).readies > readies
        });
    assert!(m.sim.elapsed() - dropped < Duration::from_millis(500));
}

/// `{"a": {"a": … leaf }}`, `levels` objects deep (built without recursion).
fn nested(levels: usize, leaf: Value) -> Value {
    (0..levels).fold(leaf, |inner, _| json!({ "a": inner }))
}

/// How deep `nested` went (read without recursion).
fn depth(mut v: &Value) -> usize {
    let mut n = 0;
    while let Some(inner) = v.get("a") {
        n += 1;
        v = inner;
    }
    n
}

/// A service with two methods for deep values that never copy them: `depth` measures its
/// params, `nest` builds a value as deep as asked. (A handler that clones a value 990 levels
/// deep needs more stack than a debug build's 2 MiB thread has — that is the handler's own
/// recursion, as it would be in Python; the endpoint's own reading, writing and dropping of such
/// values is what runs here, on the test's thread.)
fn deep_service(sim: &mut Sim, seed: u64) -> NodeId {
    use nuropb_proto::describe::{MethodSpec, ServiceSpec};
    use nuropb_proto::mesh::ServiceConfig;
    use nuropb_testkit::sim::{Reply, Work};
    let spec = ServiceSpec::new("deep")
        .method(MethodSpec::new("depth"))
        .method(MethodSpec::new("nest"));
    let config = EndpointConfig::service("/", "deep1", ServiceConfig::new(spec), seed);
    let handler = Box::new(|work: &Work<'_>| match work {
        Work::Call(call) if call.method == "depth" => {
            Reply::ok(json!(call.params.get("deep").map_or(0, depth)))
        }
        Work::Call(call) => {
            let levels = call.params["levels"].as_u64().unwrap_or(0) as usize;
            Reply::ok(nested(levels, json!("leaf")))
        }
        Work::Event(_) => Reply::ok(Value::Null),
    });
    sim.add_endpoint("deep", config, Some(handler))
}

#[test]
fn values_nested_as_deep_as_python_reads_them_go_both_ways() {
    let mut m = Mesh::new(214);
    let deep = deep_service(&mut m.sim, 214);
    m.sim.run_until("the deep service is ready", T, |s| {
        s.record(deep).readies == 1
    });
    let client = m.client;
    // 990 levels of params (Python NuroPb's own limit), more in the body around them.
    let id = m
        .sim
        .request(
            m.client,
            Request::new("deep", "depth").params(json!({ "deep": nested(990, json!(7)) })),
        )
        .unwrap();
    m.sim
        .run_until("the depth", T, |s| s.response(client, id).is_some());
    assert_eq!(m.sim.response(m.client, id), Some(&Ok(json!(990))));
    // And a result as deep, back to the client.
    let id = m
        .sim
        .request(
            m.client,
            Request::new("deep", "nest").params(json!({"levels": 1000})),
        )
        .unwrap();
    m.sim
        .run_until("the deep result", T, |s| s.response(client, id).is_some());
    match m.sim.response(m.client, id) {
        Some(Ok(value)) => assert_eq!(depth(value), 1000),
        other => panic!("{:?}", other.map(|r| r.as_ref().map(|_| "a value"))),
    }
    // Past the limit: a clear error to the caller, and the service goes on.
    let id = m
        .sim
        .request(
            m.client,
            Request::new("deep", "depth").params(json!({ "deep": nested(1100, json!(7)) })),
        )
        .unwrap();
    m.sim
        .run_until("the refusal", T, |s| s.response(client, id).is_some());
    let error: NuropbError = error_of(m.sim.response(m.client, id));
    assert_eq!(error.kind, ErrorKind::Message);
    assert!(
        error.description.contains("nested deeper than 1024 levels"),
        "{error:?}"
    );
    // A result past the limit reaches the client, which cannot read it: the request waits
    // and times out saying why.
    let id = m
        .sim
        .request(
            m.client,
            Request::new("deep", "nest")
                .params(json!({"levels": 1100}))
                .timeout(Duration::from_secs(5)),
        )
        .unwrap();
    m.sim
        .run_until("the timeout", T, |s| s.response(client, id).is_some());
    let error = error_of(m.sim.response(m.client, id));
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert!(error.description.contains("nested deeper"), "{error:?}");
    assert!(m.sim.record(deep).disconnects.is_empty());
    assert!(m.sim.record(m.client).disconnects.is_empty());
}
