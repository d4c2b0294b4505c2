//! Where messages go and what happens when they go nowhere: events with topic wildcards,
//! listeners, unroutable requests and commands, deadlines.

mod mesh_support;

use mesh_support::*;
use nuropb_proto::ErrorKind;
use nuropb_proto::mesh::{EndpointConfig, OutgoingEvent, Request};
use nuropb_proto::message::MessageType;
use serde_json::json;
use std::time::Duration;

#[test]
fn events_reach_the_services_whose_patterns_match() {
    let mut m = Mesh::new(300);
    let mut config = EndpointConfig::client("/", "watcher", 3);
    config.listen = vec!["*.created".into()];
    let watcher = m.sim.add_endpoint("watcher", config, None);
    m.sim.run_until("the watcher is ready", T, |s| {
        s.record(watcher).readies == 1
    });
    // svc binds orders.* and audit.#.
    for topic in [
        "orders.created",
        "orders.eu.created",
        "audit",
        "audit.a.b",
        "other",
        "orders",
    ] {
        m.sim
            .publish_event(m.client, OutgoingEvent::new(topic, json!(topic)))
            .unwrap();
    }
    m.sim.settle();
    let got = |node| -> Vec<String> {
        m.sim
            .record(node)
            .incoming
            .iter()
            .map(|e| e.topic.clone())
            .collect()
    };
    assert_eq!(got(m.service), ["orders.created", "audit", "audit.a.b"]);
    assert_eq!(got(watcher), ["orders.created"]);
    let s = m.sim.tap().unwrap().stats();
    assert_eq!((s.deliveries, s.acks), (3, 3));
    assert_eq!(s.auto_acked, 1, "the watcher's queue needs no acks");
    // Unrouted events vanish silently (published non-mandatory).
    assert!(m.sim.record(m.client).not_delivered.is_empty());
}

#[test]
fn an_incoming_event_carries_the_publishers_context_and_ids() {
    let mut m = Mesh::new(301);
    let cid = m
        .sim
        .publish_event(
            m.client,
            OutgoingEvent::new("orders.paid", json!({"id": 1}))
                .context(json!({"user": "u"}))
                .trace_id("t-1"),
        )
        .unwrap();
    m.sim.settle();
    let event = &m.sim.record(m.service).incoming[0];
    assert_eq!(event.correlation_id, cid);
    assert_eq!(event.trace_id.as_deref(), Some("t-1"));
    assert_eq!(event.context["user"], "u");
}

#[test]
fn a_request_nobody_serves_is_not_delivered() {
    let mut m = Mesh::new(302);
    let id = m
        .sim
        .request(m.client, Request::new("nobody", "m"))
        .unwrap();
    m.sim.settle();
    let error = error_of(m.sim.response(m.client, id));
    assert_eq!(error.kind, ErrorKind::NotDelivered);
    assert_eq!(
        error.description,
        "Service nobody not available. unable to call method m"
    );
    assert!(m.sim.endpoint(m.client).footprint().is_idle());
    assert_eq!(
        m.sim.elapsed(),
        Duration::ZERO,
        "at once, not at the deadline"
    );
}

#[test]
fn a_command_nobody_serves_is_reported() {
    let mut m = Mesh::new(303);
    let cid = m
        .sim
        .command(m.client, Request::new("nobody", "m"))
        .unwrap();
    m.sim.settle();
    let reported = &m.sim.record(m.client).not_delivered;
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].0, cid);
    assert_eq!(reported[0].1, MessageType::Command);
    assert_eq!(reported[0].2.kind, ErrorKind::NotDelivered);
}

#[test]
fn a_request_past_its_deadline_times_out_once_and_a_late_answer_is_dropped() {
    let mut m = Mesh::new(304);
    let id = m
        .sim
        .request(
            m.client,
            Request::new(SVC, "slow").timeout(Duration::from_secs(2)),
        )
        .unwrap();
    let client = m.client;
    m.sim
        .run_until("the deadline", T, |s| s.response(client, id).is_some());
    assert_eq!(
        m.sim.elapsed(),
        Duration::from_secs(2),
        "exactly at the deadline"
    );
    let error = error_of(m.sim.response(m.client, id));
    assert_eq!(error.kind, ErrorKind::Timeout);
    // The handler finishes at 10 s; its answer finds nobody waiting.
    m.sim.run_for(Duration::from_secs(20));
    assert!(m.sim.record(m.client).duplicate_responses.is_empty());
    assert_eq!(m.sim.record(m.client).responses.len(), 1);
    assert_eq!(m.sim.tap().unwrap().stats().acks, 1);
    assert!(m.sim.endpoint(m.client).footprint().is_idle());
}

#[test]
fn a_request_to_a_hung_handler_times_out_and_the_delivery_stays_unsettled() {
    let mut m = Mesh::new(305);
    let id = m
        .sim
        .request(
            m.client,
            Request::new(SVC, "hang").timeout(Duration::from_secs(5)),
        )
        .unwrap();
    m.sim.run_for(Duration::from_secs(6));
    assert_eq!(
        error_of(m.sim.response(m.client, id)).kind,
        ErrorKind::Timeout
    );
    assert_eq!(m.sim.record(m.service).held, 1);
    assert_eq!(
        m.sim.tap().unwrap().unsettled(),
        1,
        "the hung delivery is still out"
    );
    assert_eq!(m.sim.endpoint(m.service).in_flight(), 1);
}

#[test]
fn the_request_ttl_defaults_to_its_timeout() {
    // The service is gone; the request waits in its queue and expires with the deadline, so
    // nobody handles a request its caller gave up on.
    let mut m = Mesh::new(306);
    let now = m.sim.now();
    m.sim
        .endpoint_mut(m.service)
        .shutdown(std::time::Duration::ZERO, now);
    m.sim.settle();
    let id = m
        .sim
        .request(
            m.client,
            Request::new(SVC, "echo").timeout(Duration::from_secs(3)),
        )
        .unwrap();
    m.sim.run_for(Duration::from_secs(4));
    assert_eq!(
        error_of(m.sim.response(m.client, id)).kind,
        ErrorKind::Timeout
    );
    assert_eq!(
        m.sim
            .broker()
            .queue("/", "nuropb-svc-sq")
            .unwrap()
            .messages_ready,
        0
    );
    let dead = m.sim.broker().messages("/", "nuropb-dl-queue");
    assert_eq!(dead.len(), 1, "expired into the dead-letter exchange");
}
