//! Faults on the simulator: lost connections with requests in flight (a typed error, never a
//! hang), silent partitions found out by heartbeats alone, a restarting broker, forced connection and channel closes, deleted queues, a second
//! single instance; and the simulator's own promises (livelock bound, reproducible runs).

mod mesh_support;

use mesh_support::*;
use nuropb_proto::ErrorKind;
use nuropb_proto::mesh::{Backoff, CompleteError, EndpointConfig, Request, RequestId};
use nuropb_testkit::sim::{SimConfig, SimError};
use serde_json::json;
use std::time::Duration;

fn slow_requests(m: &mut Mesh, n: usize, timeout: Duration) -> Vec<RequestId> {
    (0..n)
        .map(|i| {
            m.sim
                .request(
                    m.client,
                    Request::new(SVC, "slow")
                        .params(json!({"i": i}))
                        .timeout(timeout),
                )
                .unwrap()
        })
        .collect()
}

fn resolve_all(m: &mut Mesh, ids: &[RequestId], limit: Duration) {
    let client = m.client;
    m.sim.run_until("every request resolved", limit, |s| {
        ids.iter().all(|id| s.response(client, *id).is_some())
    });
}

fn echo(m: &mut Mesh) -> serde_json::Value {
    let id = m
        .sim
        .request(
            m.client,
            Request::new(SVC, "echo").params(json!({"after": "fault"})),
        )
        .unwrap();
    resolve_all(m, &[id], T);
    ok_of(m.sim.response(m.client, id))
}

/// Each request failed as one lost with its connection: it may or may not have been handled.
fn assert_lost_with_the_connection(m: &Mesh, ids: &[RequestId]) {
    for id in ids {
        let error = error_of(m.sim.response(m.client, *id));
        assert_eq!(error.kind, ErrorKind::Transport, "{error:?}");
        assert!(
            error
                .description
                .contains("may or may not have been handled"),
            "{error:?}"
        );
    }
}

fn assert_no_violation(m: &Mesh) {
    let tap = m.sim.tap().unwrap();
    assert_eq!(tap.violations(), &[] as &[String]);
    assert!(m.sim.record(m.client).duplicate_responses.is_empty());
}

#[test]
fn a_client_that_loses_its_connection_fails_its_requests_at_once_and_recovers() {
    let mut m = Mesh::new(400);
    let ids = slow_requests(&mut m, 3, Duration::from_secs(60));
    m.sim.run_for(Duration::from_millis(1));
    assert!(m.sim.drop_connection(m.client));
    resolve_all(&mut m, &ids, Duration::ZERO);
    assert_lost_with_the_connection(&m, &ids);
    let client = m.client;
    m.sim
        .run_until("the client is back", T, |s| s.record(client).readies == 2);
    assert_eq!(echo(&mut m), json!({"after": "fault"}));
    // The service finishes the old calls; their answers find no queue and no duplicate arrives.
    m.sim.run_for(Duration::from_secs(15));
    assert_no_violation(&m);
    assert!(m.sim.endpoint(m.client).footprint().is_idle());
}

#[test]
fn a_service_that_loses_its_connection_mid_call_gets_the_call_again_after_reconnecting() {
    let mut m = Mesh::new(401);
    let ids = slow_requests(&mut m, 1, Duration::from_secs(120));
    m.sim.run_for(Duration::from_secs(1));
    assert_eq!(m.sim.record(m.service).calls.len(), 1);
    assert!(m.sim.drop_connection(m.service));
    resolve_all(&mut m, &ids, Duration::from_secs(60));
    assert_eq!(ok_of(m.sim.response(m.client, ids[0])), json!({"i": 0}));
    let calls = &m.sim.record(m.service).calls;
    assert_eq!(calls.len(), 2);
    assert!(calls[1].redelivered, "the broker requeued it");
    m.sim.settle();
    assert!(
        m.sim
            .record(m.service)
            .complete_errors
            .contains(&CompleteError::Stale)
    );
    assert_no_violation(&m);
    assert_eq!(m.sim.tap().unwrap().unsettled(), 0);
}

/// How long the simulation ran after `since`.
fn after(m: &Mesh, since: Duration) -> Duration {
    m.sim.elapsed() - since
}

#[test]
fn a_client_cut_off_without_a_word_finds_out_by_heartbeat_and_recovers() {
    // Heartbeats of 60 s both ways: each side gives up after two silent intervals.
    let mut m = Mesh::new(411);
    let ids = slow_requests(&mut m, 2, Duration::from_secs(600));
    m.sim.run_for(Duration::from_millis(1));
    let old_connection = m.sim.connection_of(m.client).unwrap();
    let queue_name = m.sim.endpoint(m.client).response_queue().to_owned();
    let cut = m.sim.elapsed();
    assert!(m.sim.partition(m.client));
    assert!(!m.sim.partition(m.client), "no socket to cut any more");
    resolve_all(&mut m, &ids, Duration::from_secs(130));
    let waited = after(&m, cut);
    assert!(
        (Duration::from_secs(60)..=Duration::from_secs(121)).contains(&waited),
        "found out by the heartbeat timer, not at once and not late: {waited:?}"
    );
    assert_lost_with_the_connection(&m, &ids);
    let client = m.client;
    m.sim
        .run_until("the client is back", T, |s| s.record(client).readies == 2);
    assert_eq!(echo(&mut m), json!({"after": "fault"}));
    // The broker gives up on the old connection by its own heartbeat timer: the connection and
    // its exclusive response queue go.
    m.sim.run_until(
        "the broker lets the unreachable connection go",
        Duration::from_secs(130),
        |s| !s.broker().connections().contains(&old_connection),
    );
    assert!(after(&m, cut) <= Duration::from_secs(121));
    let queue = m
        .sim
        .broker()
        .queue("/", &queue_name)
        .expect("declared again, same name");
    assert_eq!(queue.consumers, 1, "the new connection's");
    assert_eq!(
        m.sim.broker().connections().len(),
        2,
        "the service and the new client"
    );
    m.sim.settle();
    assert_no_violation(&m);
    assert!(m.sim.endpoint(m.client).footprint().is_idle());
}

#[test]
fn a_client_that_finds_out_before_the_broker_waits_for_its_old_connection_to_go() {
    let mut m = Mesh::new(413);
    // The broker last hears from the client 29 s after it last wrote to it, so the client's
    // heartbeat timer fires first and it reconnects while the broker still holds the old
    // connection — and with it the exclusive consumer on the response queue the client consumes
    // again under the same name.
    m.sim.run_for(Duration::from_secs(29));
    let old_connection = m.sim.connection_of(m.client).unwrap();
    let ids = slow_requests(&mut m, 1, Duration::from_secs(600));
    m.sim.run_for(Duration::from_millis(1));
    let cut = m.sim.elapsed();
    assert!(m.sim.partition(m.client));
    resolve_all(&mut m, &ids, Duration::from_secs(130));
    assert!(
        m.sim.broker().connections().contains(&old_connection),
        "the client found out first"
    );
    let client = m.client;
    m.sim
        .run_until("the client is back", Duration::from_secs(300), |s| {
            s.record(client).readies == 2 || s.record(client).stopped.is_some()
        });
    assert_eq!(m.sim.record(m.client).stopped, None, "it must not give up");
    assert!(!m.sim.broker().connections().contains(&old_connection));
    assert!(
        after(&m, cut) < Duration::from_secs(160),
        "{:?}",
        after(&m, cut)
    );
    assert_eq!(echo(&mut m), json!({"after": "fault"}));
    m.sim.settle();
    assert_no_violation(&m);
}

#[test]
fn a_twin_that_took_over_while_the_client_was_away_stops_it_once_the_grace_is_over() {
    let mut m = Mesh::new(414);
    // The client comes back late, by which time a twin with its instance id holds its response
    // queue's exclusive consumer. The client takes that for its own old connection for two
    // heartbeat intervals and half a minute, then gives up as a second instance does.
    m.sim.endpoint_mut(m.client).set_backoff(Backoff {
        initial: Duration::from_secs(5),
        max: Duration::from_secs(20),
        ..Backoff::default()
    });
    let lost = m.sim.elapsed();
    assert!(m.sim.drop_connection(m.client));
    let twin = m
        .sim
        .add_endpoint("twin", EndpointConfig::client("/", "client1", 99), None);
    m.sim
        .run_until("the twin is ready", T, |s| s.record(twin).readies == 1);
    let client = m.client;
    m.sim
        .run_until("the client stops", Duration::from_secs(300), |s| {
            s.record(client).stopped.is_some()
        });
    let stopped_after = after(&m, lost);
    assert!(
        (Duration::from_secs(150)..Duration::from_secs(180)).contains(&stopped_after),
        "{stopped_after:?}"
    );
    let record = m.sim.record(m.client);
    assert_eq!(record.readies, 1, "never ready again");
    assert!(
        record.disconnects.len() > 3,
        "it retried: {:?}",
        record.disconnects
    );
    assert!(
        record.disconnects[1]
            .description
            .contains("still holds this endpoint's previous connection"),
        "{:?}",
        record.disconnects[1]
    );
    let error = record.stopped.clone().unwrap().expect("an error");
    assert!(error.description.contains("exclusive use"), "{error:?}");
    assert_eq!(m.sim.record(twin).readies, 1, "the twin serves on");
}

#[test]
fn a_service_cut_off_mid_call_has_the_call_requeued_once_the_broker_gives_up_on_it() {
    let mut m = Mesh::new(412);
    let ids = slow_requests(&mut m, 1, Duration::from_secs(600));
    m.sim.run_for(Duration::from_secs(1));
    assert_eq!(m.sim.record(m.service).calls.len(), 1);
    let cut = m.sim.elapsed();
    assert!(m.sim.partition(m.service));
    // The first answer vanishes into the partition; the broker requeues the call when its
    // heartbeat timer gives up on the service, which by then has reconnected on its own.
    resolve_all(&mut m, &ids, Duration::from_secs(300));
    assert_eq!(ok_of(m.sim.response(m.client, ids[0])), json!({"i": 0}));
    assert!(
        after(&m, cut) >= Duration::from_secs(60),
        "not before a timer said so"
    );
    let record = m.sim.record(m.service);
    assert_eq!(record.readies, 2, "the service reconnected");
    assert_eq!(record.calls.len(), 2);
    assert!(record.calls[1].redelivered, "the broker requeued it");
    m.sim.settle();
    assert_no_violation(&m);
    assert_eq!(m.sim.tap().unwrap().unsettled(), 0);
    assert_eq!(m.sim.broker().connections().len(), 2);
}

#[test]
fn a_broker_restart_fails_requests_in_flight_and_everyone_comes_back() {
    let mut m = Mesh::new(402);
    let ids = slow_requests(&mut m, 4, Duration::from_secs(60));
    m.sim.run_for(Duration::from_millis(5));
    m.sim.restart_broker(Duration::from_secs(2));
    resolve_all(&mut m, &ids, T);
    for id in &ids {
        assert_eq!(
            error_of(m.sim.response(m.client, *id)).kind,
            ErrorKind::Transport
        );
    }
    // While the broker is down, a request waits in the outbox.
    let waiting = m
        .sim
        .request(m.client, Request::new(SVC, "echo").params(json!({"w": 1})))
        .unwrap();
    let (service, client) = (m.service, m.client);
    m.sim.run_until("both back", Duration::from_secs(120), |s| {
        s.record(service).readies == 2 && s.record(client).readies == 2
    });
    assert!(
        m.sim.elapsed() >= Duration::from_secs(2),
        "not before the broker is up"
    );
    assert!(
        m.sim.record(m.client).disconnects.len() >= 2,
        "refused while down, then back"
    );
    resolve_all(&mut m, &[waiting], T);
    assert_eq!(ok_of(m.sim.response(m.client, waiting)), json!({"w": 1}));
    let queue = m
        .sim
        .broker()
        .queue("/", "nuropb-svc-sq")
        .expect("durable: survived");
    assert!(queue.durable);
    assert_eq!(echo(&mut m), json!({"after": "fault"}));
    m.sim.run_for(Duration::from_secs(15));
    assert_no_violation(&m);
}

#[test]
fn a_request_made_while_the_broker_stays_down_times_out_at_its_deadline() {
    let mut m = Mesh::new(403);
    m.sim.restart_broker(Duration::from_secs(600));
    m.sim.run_for(Duration::from_millis(1));
    let id = m
        .sim
        .request(
            m.client,
            Request::new(SVC, "echo").timeout(Duration::from_secs(5)),
        )
        .unwrap();
    resolve_all(&mut m, &[id], Duration::from_secs(10));
    assert_eq!(
        error_of(m.sim.response(m.client, id)).kind,
        ErrorKind::Timeout
    );
    assert!(m.sim.endpoint(m.client).footprint().is_idle());
}

#[test]
fn a_connection_forced_closed_reconnects_and_redeclares() {
    let mut m = Mesh::new(404);
    assert!(m.sim.force_close(
        m.service,
        320,
        "CONNECTION_FORCED - Closed via management plugin"
    ));
    let service = m.service;
    m.sim
        .run_until("the service is back", T, |s| s.record(service).readies == 2);
    let error = &m.sim.record(m.service).disconnects[0];
    assert!(error.description.contains("320"), "{error:?}");
    assert_eq!(echo(&mut m), json!({"after": "fault"}));
    assert_no_violation(&m);
}

#[test]
fn a_channel_closed_by_the_broker_is_reopened_and_its_call_redelivered() {
    let mut m = Mesh::new(405);
    let ids = slow_requests(&mut m, 1, Duration::from_secs(120));
    m.sim.run_for(Duration::from_secs(1));
    assert_eq!(
        m.sim
            .close_channels(m.service, 406, "PRECONDITION_FAILED - injected"),
        1
    );
    resolve_all(&mut m, &ids, Duration::from_secs(60));
    assert_eq!(ok_of(m.sim.response(m.client, ids[0])), json!({"i": 0}));
    let record = m.sim.record(m.service);
    assert!(record.disconnects.is_empty(), "the connection stayed");
    assert_eq!(record.readies, 2, "the channel started over");
    assert_eq!(record.calls.len(), 2);
    assert!(record.calls[1].redelivered);
    m.sim.settle();
    assert_no_violation(&m);
}

#[test]
fn a_deleted_service_queue_is_declared_again_and_served() {
    let mut m = Mesh::new(406);
    assert!(m.sim.delete_queue("/", "nuropb-svc-sq"));
    let service = m.service;
    m.sim.run_until("the service starts over", T, |s| {
        s.record(service).readies == 2
    });
    assert!(m.sim.broker().queue("/", "nuropb-svc-sq").is_some());
    assert_eq!(echo(&mut m), json!({"after": "fault"}));
    assert_no_violation(&m);
}

#[test]
fn a_deleted_response_queue_fails_the_requests_waiting_on_it_and_comes_back() {
    let mut m = Mesh::new(407);
    let ids = slow_requests(&mut m, 2, Duration::from_secs(60));
    m.sim.run_for(Duration::from_millis(1));
    let queue = m.sim.endpoint(m.client).response_queue().to_owned();
    assert!(m.sim.delete_queue("/", &queue));
    resolve_all(&mut m, &ids, Duration::from_secs(1));
    for id in &ids {
        assert_eq!(
            error_of(m.sim.response(m.client, *id)).kind,
            ErrorKind::Transport
        );
    }
    assert_eq!(echo(&mut m), json!({"after": "fault"}));
    m.sim.run_for(Duration::from_secs(15));
    assert_no_violation(&m);
}

#[test]
fn a_second_single_instance_is_refused_and_stops() {
    let mut m = Mesh::new(408);
    let twin = m
        .sim
        .add_endpoint("twin", service_config("svc1", 9), Some(handler()));
    m.sim
        .run_until("the twin stops", T, |s| s.record(twin).stopped.is_some());
    let error = m
        .sim
        .record(twin)
        .stopped
        .clone()
        .unwrap()
        .expect("an error");
    assert_eq!(error.kind, ErrorKind::Transport);
    assert!(error.description.contains("403"), "{error:?}");
    assert_eq!(
        echo(&mut m),
        json!({"after": "fault"}),
        "the first instance serves on"
    );
}

#[test]
fn the_step_bound_reports_a_run_that_never_reaches_its_goal() {
    let mut m = Mesh::with(
        409,
        SimConfig {
            max_steps: 200,
            ..SimConfig::default()
        },
    );
    // A goal that never holds, with heartbeats for ever: the bound ends it.
    let result = m
        .sim
        .try_run_until(Duration::from_secs(365 * 24 * 3600), |_| false);
    assert!(
        matches!(result, Err(SimError::Livelock { steps: 201, .. })),
        "{result:?}"
    );
}

#[test]
fn a_run_is_reproducible_from_its_seed() {
    fn trace(seed: u64) -> String {
        let config = SimConfig {
            latency: (Duration::from_micros(10), Duration::from_millis(5)),
            split_chance: 0.3,
            ..SimConfig::default()
        };
        let mut m = Mesh::with(seed, config);
        let mut ids = Vec::new();
        for i in 0..20 {
            let method = ["echo", "call_again_once", "fail"][i % 3];
            ids.push(m.sim.request(m.client, Request::new(SVC, method)).unwrap());
            m.sim.run_for(Duration::from_micros(700));
        }
        m.sim.drop_connection(m.service);
        resolve_all(&mut m, &ids, Duration::from_secs(120));
        let calls: Vec<String> = m
            .sim
            .record(m.service)
            .calls
            .iter()
            .map(|c| format!("{}:{}:{}", c.correlation_id, c.method, c.redelivered))
            .collect();
        let responses: Vec<String> = ids
            .iter()
            .map(|id| format!("{:?}", m.sim.response(m.client, *id)))
            .collect();
        format!(
            "{:?} {} {:?} {:?} {:?}",
            m.sim.elapsed(),
            m.sim.steps(),
            m.sim.tap().unwrap().stats(),
            calls,
            responses
        )
    }
    assert_eq!(trace(7), trace(7));
    assert_ne!(trace(7), trace(8), "the seed changes the interleaving");
}

#[test]
fn an_idle_mesh_keeps_its_connections_with_heartbeats() {
    let mut m = Mesh::new(410);
    m.sim.run_for(Duration::from_secs(3600));
    assert!(m.sim.record(m.service).disconnects.is_empty());
    assert!(m.sim.record(m.client).disconnects.is_empty());
    assert_eq!(echo(&mut m), json!({"after": "fault"}));
}

/// Declares the service queue as another participant might: durable, without the mesh's
/// dead-letter argument.
fn declare_otherwise(sim: &mut nuropb_testkit::sim::Sim, raw: nuropb_testkit::sim::NodeId) {
    sim.client(raw)
        .queue_declare(
            1,
            &nuropb_proto::amqp::QueueDeclare {
                durable: true,
                ..nuropb_proto::amqp::QueueDeclare::new("nuropb-svc-sq")
            },
        )
        .unwrap();
}

#[test]
fn a_first_start_refused_for_a_queue_declared_otherwise_fails_at_once_with_the_reason() {
    // Another participant (an older deployment, a Python service with other mesh names)
    // declared the service queue with other arguments: the broker refuses the declaration with
    // 406 PRECONDITION_FAILED. A first start says so at once rather than retrying quietly.
    let mut sim = nuropb_testkit::sim::Sim::new(415, SimConfig::default());
    let raw = raw_client(&mut sim, "raw");
    declare_otherwise(&mut sim, raw);
    sim.run_for(Duration::from_millis(10));
    let service = sim.add_endpoint("svc", service_config("svc1", 415), Some(handler()));
    sim.run_until("the start fails", T, |s| {
        s.record(service).stopped.is_some()
    });
    let record = sim.record(service);
    assert_eq!(record.readies, 0);
    let error = record.stopped.clone().flatten().expect("an error");
    assert!(
        error.description.contains("406")
            && error.description.contains("x-dead-letter-exchange")
            && error.description.contains("declared otherwise"),
        "{error:?}"
    );
}

#[test]
fn a_service_queue_declared_otherwise_after_a_start_is_retried_after_the_backoff_until_put_right() {
    // Once the service has been ready, the same refusal (its queue deleted by an operator and
    // declared otherwise by someone else before it could declare it again) may be put right: it
    // is tried again after the backoff — not at once in a tight loop (as it once was) — until the
    // queue is deleted.
    let mut m = Mesh::new(416);
    let raw = raw_client(&mut m.sim, "raw");
    assert!(m.sim.delete_queue("/", "nuropb-svc-sq"));
    declare_otherwise(&mut m.sim, raw);
    m.sim.run_for(Duration::from_secs(120));
    let record = m.sim.record(m.service);
    assert_eq!(record.readies, 1, "not ready again");
    assert_eq!(record.stopped, None);
    let tries = record.disconnects.len();
    assert!((3..=15).contains(&tries), "{tries} tries in two minutes");
    let error = &record.disconnects[0];
    assert_eq!(error.kind, ErrorKind::Transport);
    assert!(
        error.description.contains("406") && error.description.contains("declared otherwise"),
        "{error:?}"
    );
    assert!(m.sim.delete_queue("/", "nuropb-svc-sq"));
    let service = m.service;
    m.sim
        .run_until("the service starts once the queue is gone", T, |s| {
            s.record(service).readies == 2
        });
}
