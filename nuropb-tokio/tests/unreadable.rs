//! On the machine's RabbitMQ: a message the core cannot read is that message's problem, never
//! the connection's. A plain AMQP client publishes property lists that RabbitMQ forwards but the
//! client cannot read in full (headers nested deeper than it reads, keys and strings that are not
//! UTF-8, a reserved flag bit) and a body over the service's limit, to a Rust service and to a
//! Rust client's response queue. Each is rejected once and dead-lettered (answered with a
//! `NuropbMessageError` where it says where to) or dropped; the participant's connection stays
//! the one it started with; a poison message at the head of a queue holds up no valid request.

mod support;

use nuropb_proto::amqp::properties::flag;
use nuropb_proto::mesh::names;
use nuropb_tokio::{CallContext, ConnectionSettings, Method, NuropbError, Request, Service};
use serde_json::{Value, json};
use std::time::Duration;
use support::raw::{Raw, nested_entry, request_properties};

const MAX_BODY: u64 = 64 * 1024;

fn echo() -> Method {
    Method::new("echo", |_ctx: CallContext, p: Value| async move {
        Ok::<_, NuropbError>(p)
    })
}

/// What each case's answer says, its properties and body.
fn cases() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let body = serde_json::to_vec(&json!({
        "tag": "request", "service": "bad", "method": "echo", "params": {"a": 1},
        "correlation_id": "corr-bad", "context": {}, "trace_id": null
    }))
    .unwrap();
    vec![
        (
            "nest deeper than 16 levels",
            request_properties(&nested_entry(40), b"corr-bad", b"app", 0),
            body.clone(),
        ),
        (
            "header key is not UTF-8",
            request_properties(&[2, 0xff, 0xfe, b'V'], b"corr-bad", b"app", 0),
            body.clone(),
        ),
        (
            "app_id is not UTF-8",
            request_properties(&[], b"corr-bad", b"\xc3\x28", 0),
            body.clone(),
        ),
        (
            "unused bits",
            request_properties(&[], b"corr-bad", b"app", flag::RESERVED),
            body.clone(),
        ),
        (
            "over the limit",
            request_properties(&[], b"corr-bad", b"app", 0),
            vec![b' '; MAX_BODY as usize + 1],
        ),
    ]
}

/// When RabbitMQ says the connection named `needle` (an instance id) was opened.
fn connected_at(needle: &str) -> Vec<String> {
    support::broker::rabbitmqctl(&["list_connections", "client_properties", "connected_at"])
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| l.rsplit('\t').next().unwrap_or_default().to_owned())
        .collect()
}

fn limited(settings: &ConnectionSettings) -> ConnectionSettings {
    ConnectionSettings {
        max_body_size: MAX_BODY,
        ..settings.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_rejects_answers_and_dead_letters_each_unreadable_message_and_serves_on() {
    let settings = support::mesh("unreadable").await;
    let instance = nuropb_tokio::random_hex();
    let service = Service::new("bad")
        .instance_id(instance.clone())
        .method(echo());
    let served = support::serve(&limited(&settings), service).await;
    let client = nuropb_tokio::connector(settings.clone())
        .client()
        .await
        .unwrap();
    let before = connected_at(&instance);
    assert_eq!(before.len(), 1, "the service's one connection");
    let raw_settings = settings.clone();
    let answers = tokio::task::spawn_blocking(move || {
        let mut raw = Raw::connect(&raw_settings);
        let dead_before = raw.depth(names::DEAD_LETTER_QUEUE);
        let mut answers = Vec::new();
        for (says, properties, body) in cases() {
            raw.publish("nuropb-rpc-exchange", "bad", &properties, &body);
            let reply = raw.reply(Duration::from_secs(10)).expect("an answer");
            let body: Value = serde_json::from_slice(&reply.body).unwrap();
            answers.push((says, reply.properties.correlation_id, body));
        }
        std::thread::sleep(Duration::from_millis(300));
        (answers, raw.depth(names::DEAD_LETTER_QUEUE) - dead_before)
    })
    .await
    .unwrap();
    let (answers, dead) = answers;
    for (says, correlation_id, body) in &answers {
        assert_eq!(
            correlation_id.as_ref().map(|c| c.as_str()),
            Some("corr-bad")
        );
        assert_eq!(
            body["error"]["error"], "NuropbMessageError",
            "{says}: {body}"
        );
        let description = body["error"]["description"].as_str().unwrap();
        assert!(description.contains(says), "{says}: {description}");
    }
    assert_eq!(dead, 5, "each dead-lettered once");
    assert_eq!(served.unreadable_messages(), 5);
    // The same connection throughout, and it serves.
    let reply = client
        .send(Request::new("bad", "echo").params(json!({"ok": true})))
        .await
        .unwrap();
    assert_eq!(reply, json!({"ok": true}));
    assert_eq!(connected_at(&instance), before, "never reconnected");
    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_at_the_head_of_the_queue_holds_up_no_valid_request() {
    let settings = support::mesh("poison").await;
    // The queue exists (declared by a first instance), with nobody consuming.
    let first = support::serve(&settings, Service::new("bad").method(echo())).await;
    first.shutdown(Duration::from_secs(1)).await;
    let raw_settings = settings.clone();
    let dead_before = tokio::task::spawn_blocking(move || {
        let mut raw = Raw::connect(&raw_settings);
        let dead = raw.depth(names::DEAD_LETTER_QUEUE);
        for (_, properties, body) in cases().into_iter().take(4) {
            raw.publish("nuropb-rpc-exchange", "bad", &properties, &body);
        }
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            raw.depth(&names::service_queue("bad")),
            4,
            "the bad ones wait"
        );
        dead
    })
    .await
    .unwrap();
    let client = nuropb_tokio::connector(settings.clone())
        .client()
        .await
        .unwrap();
    let calls: Vec<_> = (0..50)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .send(
                        Request::new("bad", "echo")
                            .params(json!({ "n": n }))
                            .timeout(Duration::from_secs(20)),
                    )
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // An instance starts on the queue: four poison messages at its head, fifty requests behind.
    let served = support::serve(&settings, Service::new("bad").prefetch(8).method(echo())).await;
    for (n, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), json!({ "n": n }));
    }
    let raw_settings = settings.clone();
    let dead = tokio::task::spawn_blocking(move || {
        Raw::connect(&raw_settings).depth(names::DEAD_LETTER_QUEUE) - dead_before
    })
    .await
    .unwrap();
    assert_eq!(dead, 4, "dead-lettered once each");
    assert_eq!(served.unreadable_messages(), 4);
    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_drops_unreadable_responses_and_its_requests_get_their_answers() {
    let settings = support::mesh("unreadable-client").await;
    let served = support::serve(&settings, Service::new("slow").method(support::nap())).await;
    let instance = nuropb_tokio::random_hex();
    let client = nuropb_tokio::connector(limited(&settings))
        .instance_id(instance.clone())
        .client()
        .await
        .unwrap();
    let before = connected_at(&instance);
    let response_queue = names::response_queue(client.name(), &instance);
    // A request in flight for two seconds.
    let pending = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .send(Request::new("slow", "nap").params(json!({"ms": 2000})))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let raw_settings = settings.clone();
    tokio::task::spawn_blocking(move || {
        let mut raw = Raw::connect(&raw_settings);
        for (_, properties, body) in cases() {
            raw.publish("", &response_queue, &properties, &body);
        }
        std::thread::sleep(Duration::from_millis(300));
    })
    .await
    .unwrap();
    assert_eq!(pending.await.unwrap().unwrap(), json!(2000));
    assert_eq!(client.unreadable_messages(), 5);
    assert_eq!(connected_at(&instance), before, "never reconnected");
    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}
