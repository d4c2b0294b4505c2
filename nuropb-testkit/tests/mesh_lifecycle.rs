//! The life of an endpoint, on the simulator with no RabbitMQ: which broker node it connects to
//! and when, how a first start fails, how it shuts down. The endpoint decides all of it; the
//! simulator only opens the sockets it asks for, through nodes that are up, down or broken.

mod mesh_support;

use mesh_support::*;
use nuropb_proto::mesh::{EndpointConfig, Phase, Request};
use nuropb_proto::{ErrorKind, NuropbError};
use nuropb_testkit::sim::{BrokerNode, NodeId, Reply, Sim, SimConfig, Work};
use serde_json::json;
use std::time::Duration;

/// `count` broker node names.
fn nodes(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("node{n}")).collect()
}

/// A service and a client that know `count` broker nodes, both ready (on node 0).
fn cluster(seed: u64, count: usize) -> Mesh {
    let mut sim = Sim::new(seed, SimConfig::default());
    sim.set_broker_nodes(count);
    let mut service = service_config("svc1", seed);
    service.nodes = nodes(count);
    let mut client = EndpointConfig::client("/", "client1", seed ^ 1);
    client.nodes = nodes(count);
    let service = sim.add_endpoint("svc", service, Some(handler()));
    let client = sim.add_endpoint("client", client, None);
    sim.run_until("both ready", T, |s| {
        s.record(service).readies == 1 && s.record(client).readies == 1
    });
    Mesh {
        sim,
        service,
        client,
    }
}

fn echo_ok(m: &mut Mesh, what: &str) {
    let id = m
        .sim
        .request(
            m.client,
            Request::new(SVC, "echo").params(json!({ "x": what })),
        )
        .unwrap();
    let client = m.client;
    m.sim
        .run_until(what, T, |s| s.response(client, id).is_some());
    assert_eq!(ok_of(m.sim.response(m.client, id)), json!({ "x": what }));
}

fn ready_on(m: &Mesh, node: NodeId) -> Option<usize> {
    (m.sim.endpoint(node).phase() == Phase::Ready)
        .then(|| m.sim.via(node))
        .flatten()
}

#[test]
fn a_dead_node_is_left_for_the_next_of_two_and_a_refused_reconnect_counts_once() {
    let mut m = cluster(500, 2);
    assert_eq!(m.sim.via(m.service), Some(0));
    m.sim.set_broker_node(0, BrokerNode::Down);
    let (service, client) = (m.service, m.client);
    m.sim.run_until("both on node 1", T, |s| {
        s.record(service).readies == 2 && s.record(client).readies == 2
    });
    // The lost node is tried once more (its connection had been ready), refused, and that one
    // refusal passes the turn to node 1: counted twice, it would come back to node 0.
    for node in [service, client] {
        assert_eq!(m.sim.record(node).connects, [0, 0, 1]);
        assert_eq!(ready_on(&m, node), Some(1));
    }
    echo_ok(&mut m, "after failover");
}

#[test]
fn failover_goes_round_three_nodes() {
    let mut m = cluster(501, 3);
    let service = m.service;
    m.sim.set_broker_node(0, BrokerNode::Down);
    m.sim
        .run_until("on node 1", T, |s| s.record(service).readies == 2);
    assert_eq!(ready_on(&m, service), Some(1));
    echo_ok(&mut m, "on node 1");
    // Node 0 comes back and node 1 goes: the turn is node 2's, not node 0's.
    m.sim.set_broker_node(0, BrokerNode::Up);
    m.sim.set_broker_node(1, BrokerNode::Down);
    m.sim
        .run_until("on node 2", T, |s| s.record(service).readies == 3);
    assert_eq!(ready_on(&m, service), Some(2));
    echo_ok(&mut m, "on node 2");
    m.sim.set_broker_node(2, BrokerNode::Down);
    m.sim
        .run_until("round to node 0", T, |s| s.record(service).readies == 4);
    assert_eq!(ready_on(&m, service), Some(0));
    assert_eq!(m.sim.record(service).connects, [0, 0, 1, 1, 2, 2, 0]);
    assert_eq!(m.sim.record(service).stopped, None);
}

#[test]
fn a_node_that_takes_the_socket_and_fails_the_handshake_is_passed_over() {
    // At the first start: the broken first node is tried once, then the second.
    let mut sim = Sim::new(502, SimConfig::default());
    sim.set_broker_nodes(2);
    sim.set_broker_node(0, BrokerNode::Broken);
    let mut config = EndpointConfig::client("/", "c1", 5);
    config.nodes = nodes(2);
    let client = sim.add_endpoint("client", config, None);
    sim.run_until("ready", T, |s| s.record(client).readies == 1);
    assert_eq!(sim.record(client).connects, [0, 1]);
    assert_eq!(sim.via(client), Some(1));
    assert_eq!(sim.record(client).disconnects.len(), 1);
    // Once ready, the same: its node breaks, it moves on, never stuck on the broken one.
    sim.set_broker_node(0, BrokerNode::Up);
    sim.set_broker_node(1, BrokerNode::Broken);
    assert!(sim.drop_connection(client));
    sim.run_until("ready again", T, |s| s.record(client).readies == 2);
    assert_eq!(sim.record(client).connects, [0, 1, 1, 0]);
}

#[test]
fn every_node_down_at_the_first_start_fails_it_naming_each() {
    let mut sim = Sim::new(503, SimConfig::default());
    sim.set_broker_nodes(3);
    sim.set_broker_node(0, BrokerNode::Down);
    sim.set_broker_node(1, BrokerNode::Broken);
    sim.set_broker_node(2, BrokerNode::Down);
    let mut config = EndpointConfig::client("/", "c1", 5);
    config.nodes = nodes(3);
    let client = sim.add_endpoint("client", config, None);
    sim.run_until("stopped", T, |s| s.record(client).stopped.is_some());
    let error = sim.record(client).stopped.clone().flatten().expect("why");
    assert_eq!(error.kind, ErrorKind::Transport);
    assert!(
        error
            .description
            .starts_with("cannot start on node0, node1, node2 (node0: connection refused; node1: "),
        "{error:?}"
    );
    assert!(
        error.description.contains("; node2: connection refused)"),
        "{error:?}"
    );
    // Each node once, then nothing more.
    assert_eq!(sim.record(client).connects, [0, 1, 2]);
    sim.run_for(Duration::from_secs(60));
    assert_eq!(sim.record(client).connects, [0, 1, 2]);
}

#[test]
fn max_reconnects_stops_an_outage_that_does_not_end() {
    let mut sim = Sim::new(504, SimConfig::default());
    let mut config = EndpointConfig::client("/", "c1", 5);
    config.max_reconnects = Some(4);
    let client = sim.add_endpoint("client", config, None);
    sim.run_until("ready", T, |s| s.record(client).readies == 1);
    sim.set_broker_node(0, BrokerNode::Down);
    sim.run_until("given up", Duration::from_secs(120), |s| {
        s.record(client).stopped.is_some()
    });
    let error = sim.record(client).stopped.clone().flatten().expect("why");
    assert!(
        error
            .description
            .starts_with("gave up after 4 reconnect attempts"),
        "{error:?}"
    );
    assert_eq!(sim.record(client).connects.len(), 1 + 4);
}

/// A service instance whose `slow` takes 10 s and whose `hang` never finishes.
fn stubborn(sim: &mut Sim, instance: &str, seed: u64) -> NodeId {
    let mut config = service_config(instance, seed);
    config.service.as_mut().unwrap().prefetch = 8;
    sim.add_endpoint(
        instance,
        config,
        Some(Box::new(|work: &Work<'_>| match work {
            Work::Call(call) if call.method == "slow" => {
                Reply::ok(json!({"by": "svc1"})).after(Duration::from_secs(10))
            }
            Work::Call(_) => Reply::Hold,
            Work::Event(_) => Reply::ok(json!(null)),
        })),
    )
}

/// A service instance that answers everything at once.
fn eager(sim: &mut Sim, instance: &str, seed: u64) -> NodeId {
    sim.add_endpoint(
        instance,
        service_config(instance, seed),
        Some(Box::new(|_: &Work<'_>| Reply::ok(json!({"by": "svc2"})))),
    )
}

#[test]
fn a_shutdown_lets_handlers_finish_within_the_grace_and_requeues_the_rest_for_another_instance() {
    let mut sim = Sim::new(505, SimConfig::default());
    let first = stubborn(&mut sim, "svc1", 1);
    let client = sim.add_endpoint("client", EndpointConfig::client("/", "c1", 2), None);
    sim.run_until("ready", T, |s| {
        s.record(first).readies == 1 && s.record(client).readies == 1
    });
    let ids: Vec<_> = ["slow", "slow", "hang", "hang"]
        .into_iter()
        .map(|m| sim.request(client, Request::new(SVC, m)).unwrap())
        .collect();
    sim.run_until("all in flight", T, |s| s.endpoint(first).in_flight() == 4);
    let second = eager(&mut sim, "svc2", 3);
    sim.run_until("the second is ready", T, |s| s.record(second).readies == 1);
    // Fifteen seconds of grace: the slow calls finish in ten, the hanging ones never.
    let began = sim.elapsed();
    let now = sim.now();
    sim.endpoint_mut(first)
        .shutdown(Duration::from_secs(15), now);
    // No new deliveries from now on: a request made now goes to the second instance.
    let late = sim.request(client, Request::new(SVC, "slow")).unwrap();
    sim.run_until("the first stops", Duration::from_secs(30), |s| {
        s.record(first).stopped.is_some()
    });
    let stopped_after = sim.elapsed() - began;
    assert!(
        stopped_after >= Duration::from_secs(15) && stopped_after < Duration::from_secs(16),
        "stopped {stopped_after:?} after the shutdown began"
    );
    assert_eq!(sim.record(first).stopped, Some(None), "a clean stop");
    sim.run_until("every request answered", T, |s| {
        ids.iter()
            .chain([&late])
            .all(|id| s.response(client, *id).is_some())
    });
    let by = |id| ok_of(sim.response(client, id))["by"].clone();
    assert_eq!([by(ids[0]), by(ids[1])], [json!("svc1"), json!("svc1")]);
    assert_eq!(
        [by(ids[2]), by(ids[3]), by(late)],
        [json!("svc2"), json!("svc2"), json!("svc2")],
        "what did not finish, and what came after, went to the other instance"
    );
    let tap = sim.tap().unwrap();
    assert_eq!(tap.violations(), &[] as &[String]);
    assert_eq!(tap.stats().requeues, 2, "the two unfinished, requeued");
    assert_eq!(tap.unsettled(), 0);
}

#[test]
fn a_shutdown_with_nothing_left_in_flight_stops_at_once() {
    let mut sim = Sim::new(506, SimConfig::default());
    let first = stubborn(&mut sim, "svc1", 1);
    let client = sim.add_endpoint("client", EndpointConfig::client("/", "c1", 2), None);
    sim.run_until("ready", T, |s| {
        s.record(first).readies == 1 && s.record(client).readies == 1
    });
    let id = sim.request(client, Request::new(SVC, "slow")).unwrap();
    sim.run_until("in flight", T, |s| s.endpoint(first).in_flight() == 1);
    let began = sim.elapsed();
    let now = sim.now();
    sim.endpoint_mut(first)
        .shutdown(Duration::from_secs(60), now);
    sim.run_until("stopped", Duration::from_secs(30), |s| {
        s.record(first).stopped.is_some()
    });
    // Once the one handler is done (10 s), not at the end of the grace.
    let took = sim.elapsed() - began;
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(11),
        "{took:?}"
    );
    sim.run_until("its answer", T, |s| s.response(client, id).is_some());
    assert_eq!(ok_of(sim.response(client, id))["by"], "svc1");
}

#[test]
fn a_shutdown_while_offline_stops_at_once_and_fails_what_waits() {
    let mut m = Mesh::new(507);
    let client = m.client;
    m.sim.set_broker_node(0, BrokerNode::Down);
    m.sim.run_until("offline", T, |s| {
        s.endpoint(client).phase() == Phase::Disconnected
    });
    let waiting = m.sim.request(client, Request::new(SVC, "echo")).unwrap();
    let now = m.sim.now();
    m.sim
        .endpoint_mut(client)
        .shutdown(Duration::from_secs(30), now);
    m.sim.run_for(Duration::ZERO);
    assert_eq!(m.sim.record(client).stopped, Some(None));
    assert_eq!(m.sim.endpoint(client).phase(), Phase::Stopped);
    let error: NuropbError = error_of(m.sim.response(client, waiting));
    assert_eq!(error.kind, ErrorKind::Transport);
    // Stopped for good: no more sockets asked for, even once the node is back.
    let asked = m.sim.record(client).connects.len();
    m.sim.set_broker_node(0, BrokerNode::Up);
    m.sim.run_for(Duration::from_secs(120));
    assert_eq!(m.sim.record(client).connects.len(), asked);
    // And commands are refused.
    assert!(m.sim.request(client, Request::new(SVC, "echo")).is_err());
}
