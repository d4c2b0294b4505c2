//! Every row of the ack table (NUROPB-WIRE.md §4.1, §9 (F) quirks fixed), on the simulator: what
//! the service settles on the wire (seen by the tap, as the broker sees it), what it answers, and
//! which events it publishes.

mod mesh_support;

use mesh_support::*;
use nuropb_proto::ErrorKind;
use nuropb_proto::mesh::{EndpointConfig, OutgoingEvent, Request, RequestId};
use nuropb_testkit::sim::{NodeId, Sim, TapStats};
use serde_json::{Value, json};

fn stats(sim: &Sim) -> TapStats {
    sim.tap().expect("the tap is on").stats()
}

/// A listener for the service's events (`svc.#`), ready.
fn listener(sim: &mut Sim) -> NodeId {
    let mut config = EndpointConfig::client("/", "listener1", 99);
    config.listen = vec!["svc.#".into()];
    let node = sim.add_endpoint("listener", config, None);
    sim.run_until("the listener is ready", T, |s| s.record(node).readies == 1);
    node
}

fn request(mesh: &mut Mesh, method: &str) -> RequestId {
    let id = mesh
        .sim
        .request(
            mesh.client,
            Request::new(SVC, method).params(json!({"a": 1})),
        )
        .unwrap();
    let client = mesh.client;
    mesh.sim
        .run_until(method, T, |s| s.response(client, id).is_some());
    mesh.sim.settle();
    id
}

fn command(mesh: &mut Mesh, method: &str) {
    mesh.sim
        .command(
            mesh.client,
            Request::new(SVC, method).params(json!({"a": 1})),
        )
        .unwrap();
    mesh.sim.settle();
}

fn topics(sim: &Sim, node: NodeId) -> Vec<(String, Value)> {
    sim.record(node)
        .incoming
        .iter()
        .map(|e| (e.topic.clone(), e.event.clone()))
        .collect()
}

fn calls(mesh: &Mesh) -> Vec<(String, bool)> {
    mesh.sim
        .record(mesh.service)
        .calls
        .iter()
        .map(|c| (c.method.clone(), c.redelivered))
        .collect()
}

/// No double settlement, nothing left unsettled, no second response, nothing left in the
/// endpoints' tables.
fn assert_clean(mesh: &Mesh) {
    let tap = mesh.sim.tap().unwrap();
    assert_eq!(tap.violations(), &[] as &[String]);
    assert_eq!(tap.unsettled(), 0, "every delivery settled");
    for node in [mesh.service, mesh.client] {
        let record = mesh.sim.record(node);
        assert!(record.duplicate_responses.is_empty());
        assert!(
            record.complete_errors.is_empty(),
            "{:?}",
            record.complete_errors
        );
        assert!(record.disconnects.is_empty(), "{:?}", record.disconnects);
        let footprint = mesh.sim.endpoint(node).footprint();
        assert!(footprint.is_idle(), "{footprint:?}");
    }
}

/// The messages dead-lettered so far, with their `x-death` reason.
fn dead_letters(sim: &Sim) -> Vec<String> {
    sim.broker()
        .messages("/", "nuropb-dl-queue")
        .iter()
        .map(|m| {
            let headers = m.properties.headers.as_ref().expect("x-death headers");
            match headers.get("x-first-death-reason") {
                Some(nuropb_proto::amqp::AMQPValue::LongString(s)) => {
                    String::from_utf8_lossy(s.as_bytes()).into_owned()
                }
                other => format!("{other:?}"),
            }
        })
        .collect()
}

#[test]
fn a_request_that_succeeds_is_acked_and_answered_once() {
    let mut m = Mesh::new(1);
    let id = request(&mut m, "echo");
    assert_eq!(ok_of(m.sim.response(m.client, id)), json!({"a": 1}));
    let s = stats(&m.sim);
    assert_eq!((s.deliveries, s.acks, s.rejects, s.requeues), (1, 1, 0, 0));
    assert_eq!(m.sim.record(m.client).responses.len(), 1);
    assert!(dead_letters(&m.sim).is_empty());
    assert_clean(&m);
}

#[test]
fn a_command_that_succeeds_is_acked_and_not_answered() {
    let mut m = Mesh::new(2);
    command(&mut m, "echo");
    let s = stats(&m.sim);
    assert_eq!((s.deliveries, s.acks, s.rejects, s.requeues), (1, 1, 0, 0));
    assert_eq!(
        s.auto_acked, 0,
        "no response reached the client's response queue"
    );
    assert_eq!(calls(&m), vec![("echo".to_owned(), false)]);
    assert_clean(&m);
}

#[test]
fn an_event_that_is_handled_is_acked() {
    let mut m = Mesh::new(3);
    m.sim
        .publish_event(
            m.client,
            OutgoingEvent::new("orders.created", json!({"id": 7})),
        )
        .unwrap();
    m.sim.settle();
    let s = stats(&m.sim);
    assert_eq!((s.deliveries, s.acks, s.rejects), (1, 1, 0));
    assert_eq!(
        topics(&m.sim, m.service),
        vec![("orders.created".into(), json!({"id": 7}))]
    );
    assert_clean(&m);
}

#[test]
fn an_event_whose_handler_fails_is_rejected_and_dead_lettered() {
    let mut m = Mesh::new(4);
    m.sim
        .publish_event(m.client, OutgoingEvent::new("audit.fail", json!(1)))
        .unwrap();
    m.sim.settle();
    assert_eq!(
        m.sim.elapsed(),
        std::time::Duration::ZERO,
        "no latency: settled at once"
    );
    let s = stats(&m.sim);
    assert_eq!((s.deliveries, s.acks, s.rejects, s.requeues), (1, 0, 1, 0));
    assert_eq!(dead_letters(&m.sim).len(), 1);
    assert!(dead_letters(&m.sim)[0].contains("rejected"));
    assert_clean(&m);
}

#[test]
fn nuropb_success_answers_the_result_and_publishes_its_events() {
    let mut m = Mesh::new(5);
    let l = listener(&mut m.sim);
    let id = request(&mut m, "success_events");
    assert_eq!(ok_of(m.sim.response(m.client, id)), json!("early"));
    assert_eq!(
        topics(&m.sim, l),
        vec![("svc.success".into(), json!({"n": 1}))]
    );
    let event = &m.sim.record(l).incoming[0];
    let call = &m.sim.record(m.service).calls[0];
    assert_eq!(
        event.correlation_id, call.correlation_id,
        "events carry the request's ids"
    );
    let s = stats(&m.sim);
    assert_eq!((s.acks, s.rejects), (1, 0));
    assert_eq!(
        m.sim.record(m.client).responses.len(),
        1,
        "one response, not Python's two"
    );
    assert_clean(&m);
}

#[test]
fn nuropb_success_from_a_command_is_acked_and_publishes_its_events() {
    let mut m = Mesh::new(6);
    let l = listener(&mut m.sim);
    command(&mut m, "success_events");
    assert_eq!(
        topics(&m.sim, l),
        vec![("svc.success".into(), json!({"n": 1}))]
    );
    assert_eq!((stats(&m.sim).acks, stats(&m.sim).rejects), (1, 0));
    assert_clean(&m);
}

#[test]
fn a_failing_request_is_rejected_once_and_answered_with_the_error() {
    let mut m = Mesh::new(7);
    let id = request(&mut m, "fail");
    let error = error_of(m.sim.response(m.client, id));
    assert_eq!(
        (error.kind, error.description.as_str()),
        (ErrorKind::Exception, "it failed")
    );
    let s = stats(&m.sim);
    assert_eq!((s.deliveries, s.acks, s.rejects, s.requeues), (1, 0, 1, 0));
    assert_eq!(
        dead_letters(&m.sim).len(),
        1,
        "rejected without requeue: dead-lettered"
    );
    assert_clean(&m);
}

#[test]
fn a_failing_command_is_rejected_and_not_answered() {
    let mut m = Mesh::new(8);
    command(&mut m, "fail");
    let s = stats(&m.sim);
    assert_eq!(
        (s.deliveries, s.acks, s.rejects, s.auto_acked),
        (1, 0, 1, 0)
    );
    assert_clean(&m);
}

#[test]
fn call_again_requeues_once_and_the_redelivery_succeeds() {
    let mut m = Mesh::new(9);
    let id = request(&mut m, "call_again_once");
    assert_eq!(
        ok_of(m.sim.response(m.client, id)),
        json!({"redelivered": true})
    );
    assert_eq!(
        calls(&m),
        vec![
            ("call_again_once".into(), false),
            ("call_again_once".into(), true)
        ]
    );
    let s = stats(&m.sim);
    assert_eq!(
        (s.deliveries, s.redeliveries, s.requeues, s.acks, s.rejects),
        (2, 1, 1, 1, 0)
    );
    let cid = &m.sim.record(m.service).calls[0].correlation_id;
    assert_eq!(m.sim.tap().unwrap().requeues_of(cid), 1);
    assert_clean(&m);
}

#[test]
fn call_again_twice_is_rejected_with_nuropb_call_again_reject() {
    let mut m = Mesh::new(10);
    let id = request(&mut m, "call_again_loop");
    let error = error_of(m.sim.response(m.client, id));
    assert_eq!(error.kind, ErrorKind::CallAgainReject);
    assert!(
        error
            .description
            .starts_with("Rejecting second call again request")
    );
    let s = stats(&m.sim);
    assert_eq!((s.deliveries, s.requeues, s.acks, s.rejects), (2, 1, 0, 1));
    assert_eq!(calls(&m).len(), 2, "handled twice, never a third time");
    assert_eq!(m.sim.record(m.client).responses.len(), 1);
    assert_clean(&m);
}

#[test]
fn a_command_calling_again_twice_is_requeued_once_then_rejected() {
    let mut m = Mesh::new(11);
    command(&mut m, "call_again_loop");
    let s = stats(&m.sim);
    assert_eq!(
        (s.deliveries, s.requeues, s.acks, s.rejects, s.auto_acked),
        (2, 1, 0, 1, 0)
    );
    assert_clean(&m);
}

#[test]
fn handler_context_events_go_out_after_success_only() {
    let mut m = Mesh::new(12);
    let l = listener(&mut m.sim);
    request(&mut m, "ctx_events");
    assert_eq!(topics(&m.sim, l), vec![("svc.ctx".into(), json!({"n": 2}))]);
    request(&mut m, "ctx_events_fail");
    assert_eq!(topics(&m.sim, l).len(), 1, "dropped on failure");
    let id = request(&mut m, "ctx_events_call_again");
    assert_eq!(ok_of(m.sim.response(m.client, id)), json!("second"));
    assert_eq!(
        topics(&m.sim, l),
        vec![
            ("svc.ctx".into(), json!({"n": 2})),
            ("svc.ctx".into(), json!({"n": 5}))
        ],
        "dropped on call-again, published after the redelivery's success"
    );
    assert_clean(&m);
}

#[test]
fn unknown_private_and_hidden_methods_are_handling_errors_the_handler_never_sees() {
    let mut m = Mesh::new(13);
    for method in ["nope", "_private", "invisible"] {
        let id = request(&mut m, method);
        let error = error_of(m.sim.response(m.client, id));
        assert_eq!(error.kind, ErrorKind::Handling, "{method}");
        assert_eq!(error.description, format!("Unknown method {method}"));
    }
    assert!(calls(&m).is_empty());
    let s = stats(&m.sim);
    assert_eq!((s.deliveries, s.rejects, s.acks), (3, 3, 0));
    assert_clean(&m);
}

#[test]
fn nuropb_describe_is_answered_by_the_endpoint() {
    let mut m = Mesh::new(14);
    let id = m.sim.describe(m.client, SVC).unwrap();
    let client = m.client;
    m.sim
        .run_until("describe", T, |s| s.response(client, id).is_some());
    m.sim.settle();
    let description = ok_of(m.sim.response(m.client, id));
    assert_eq!(description["service_name"], "svc");
    assert_eq!(description["service_version"], "1.0");
    assert_eq!(description["encrypted_methods"], true);
    assert!(
        description["public_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    let methods = description["methods"].as_object().unwrap();
    assert!(methods.contains_key("echo") && methods.contains_key("secret"));
    assert!(!methods.contains_key("invisible"), "hidden from describe");
    assert!(calls(&m).is_empty(), "no handler involved");
    assert!(m.sim.endpoint(m.client).has_public_key(SVC));
    assert_eq!(
        m.sim.endpoint(m.client).requires_encryption(SVC, "secret"),
        Some(true)
    );
    assert_eq!(stats(&m.sim).acks, 1);
    assert_clean(&m);
}
