//! A small mesh for the simulator tests: one service `svc` with a method for every row of the
//! ack table, a client, an event listener, and a raw AMQP client for hand-made messages.
#![allow(dead_code)]

use nuropb_proto::amqp::{self, AMQPValue, Headers, LongString, Properties};
use nuropb_proto::crypto::{PrivateKey, keys};
use nuropb_proto::describe::{MethodSpec, ServiceSpec};
use nuropb_proto::mesh::{EndpointConfig, EventSpec, Outcome, ServiceConfig};
use nuropb_proto::{ErrorKind, NuropbError};
use nuropb_testkit::sim::{Handler, NodeId, Reply, Sim, SimConfig, Work};
use serde_json::{Value, json};
use std::sync::OnceLock;
use std::time::Duration;

pub const SVC: &str = "svc";
pub const T: Duration = Duration::from_secs(30);

/// One RSA key per test binary (1024 bits: fast, and any size works on the wire).
pub fn private_key() -> PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| keys::generate(1024).expect("an RSA key"))
        .clone()
}

/// The service: a method per behaviour.
pub fn spec() -> ServiceSpec {
    ServiceSpec::new(SVC)
        .version("1.0")
        .description("the simulated service")
        .method(MethodSpec::new("echo").description("returns its params"))
        .method(MethodSpec::new("fail"))
        .method(MethodSpec::new("call_again_once"))
        .method(MethodSpec::new("call_again_loop"))
        .method(MethodSpec::new("success_events"))
        .method(MethodSpec::new("ctx_events"))
        .method(MethodSpec::new("ctx_events_fail"))
        .method(MethodSpec::new("ctx_events_call_again"))
        .method(MethodSpec::new("slow"))
        .method(MethodSpec::new("hang"))
        .method(MethodSpec::new("secret").requires_encryption())
        .method(MethodSpec::new("guarded").authorized())
        .method(MethodSpec::new("invisible").hidden())
        .method(MethodSpec::new("_private"))
}

/// What the service does for each method; events fail when their topic says so.
pub fn handler() -> Handler {
    Box::new(|work: &Work<'_>| match work {
        Work::Call(call) => {
            let params = Value::Object(call.params.clone());
            match call.method.as_str() {
                "echo" | "secret" | "invisible" | "_private" => Reply::ok(params),
                "fail" => Reply::err(NuropbError::new(ErrorKind::Exception, "it failed")),
                "call_again_once" if !call.redelivered => Reply::call_again(),
                "call_again_once" => Reply::ok(json!({"redelivered": true})),
                "call_again_loop" => Reply::call_again(),
                "success_events" => Reply::outcome(Outcome::Success {
                    result: json!("early"),
                    events: vec![EventSpec::new("svc.success", json!({"n": 1}))],
                }),
                "ctx_events" => Reply::ok(json!("done"))
                    .with_events(vec![EventSpec::new("svc.ctx", json!({"n": 2}))]),
                "ctx_events_fail" => Reply::err(NuropbError::new(ErrorKind::Exception, "no"))
                    .with_events(vec![EventSpec::new("svc.ctx", json!({"n": 3}))]),
                "ctx_events_call_again" if !call.redelivered => Reply::call_again()
                    .with_events(vec![EventSpec::new("svc.ctx", json!({"n": 4}))]),
                "ctx_events_call_again" => Reply::ok(json!("second"))
                    .with_events(vec![EventSpec::new("svc.ctx", json!({"n": 5}))]),
                "slow" => Reply::ok(params).after(Duration::from_secs(10)),
                "hang" => Reply::Hold,
                "guarded" => match call.token.as_deref() {
                    Some("Bearer good") => Reply::ok(json!({"claims": "user-1"})),
                    _ => Reply::err(NuropbError::new(
                        ErrorKind::Authorization,
                        "the token is not accepted",
                    )),
                },
                other => Reply::err(NuropbError::new(
                    ErrorKind::Exception,
                    format!("the handler has no {other}"),
                )),
            }
        }
        Work::Event(event) if event.topic.contains("fail") => {
            Reply::err(NuropbError::new(ErrorKind::Exception, "event failed"))
        }
        Work::Event(_) => Reply::ok(Value::Null),
    })
}

/// The service's configuration (with a key, the mesh configured on connect so that the
/// dead-letter queue exists).
pub fn service_config(instance: &str, seed: u64) -> EndpointConfig {
    let mut service = ServiceConfig::new(spec());
    service.private_key = Some(private_key());
    service.event_bindings = vec!["orders.*".into(), "audit.#".into()];
    let mut config = EndpointConfig::service("/", instance, service, seed);
    config.configure_mesh_on_connect = true;
    config
}

/// A simulation with the service `svc` and a client, both ready.
pub struct Mesh {
    pub sim: Sim,
    pub service: NodeId,
    pub client: NodeId,
}

impl Mesh {
    pub fn new(seed: u64) -> Mesh {
        Mesh::with(seed, SimConfig::default())
    }

    pub fn with(seed: u64, config: SimConfig) -> Mesh {
        let mut sim = Sim::new(seed, config);
        let service = sim.add_endpoint("svc", service_config("svc1", seed), Some(handler()));
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
}

/// A plain AMQP client with channel 1 open.
pub fn raw_client(sim: &mut Sim, name: &str) -> NodeId {
    let node = sim.add_client(name, amqp::Config::new("guest", "guest", "/"));
    sim.run_until("the raw client connects", T, |s| {
        s.connection_of(node).is_some()
    });
    wait_event(sim, node, "connected", |e| {
        matches!(e, amqp::Event::Connected { .. })
    });
    let ch = sim.client(node).open_channel().expect("a channel");
    assert_eq!(ch, 1);
    wait_event(sim, node, "channel 1 opened", |e| {
        matches!(e, amqp::Event::ChannelOpened { .. })
    });
    node
}

/// Runs until the raw client has an event that `want` accepts, and returns it (events before it
/// are dropped).
pub fn wait_event(
    sim: &mut Sim,
    node: NodeId,
    what: &str,
    mut want: impl FnMut(&amqp::Event) -> bool,
) -> amqp::Event {
    loop {
        while let Some(e) = sim.client_events(node).pop_front() {
            if want(&e) {
                return e;
            }
        }
        sim.run_until(what, T, |s| s.client_event_count(node) > 0);
    }
}

/// Headers of a NuroPb message of `kind`.
pub fn headers(kind: &str, protocol: &str, encrypted: &str) -> Headers {
    let s = |v: &str| AMQPValue::LongString(LongString::from(v.to_owned()));
    let mut h = Headers::default();
    h.insert("nuropb_protocol", s(protocol));
    h.insert("nuropb_version", s("0.1.8"));
    h.insert("nuropb_type", s(kind));
    h.insert("trace_id", s("trace-raw"));
    h.insert("encrypted", s(encrypted));
    h
}

/// Properties of a hand-made request answered to `reply_to`.
pub fn props(headers: Option<Headers>, correlation_id: &str, reply_to: &str) -> Properties {
    Properties {
        content_type: Some("application/json".into()),
        headers,
        correlation_id: Some(correlation_id.into()),
        reply_to: Some(reply_to.into()),
        ..Default::default()
    }
}

/// A request body.
pub fn request_body(method: &str, params: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "tag": "request", "service": SVC, "method": method, "params": params,
        "correlation_id": "raw", "context": {}, "trace_id": "trace-raw"
    }))
    .unwrap()
}

/// The error of a response, or a panic.
pub fn error_of(result: Option<&Result<Value, NuropbError>>) -> NuropbError {
    match result {
        Some(Err(e)) => e.clone(),
        other => panic!("expected an error response, got {other:?}"),
    }
}

/// The result of a response, or a panic.
pub fn ok_of(result: Option<&Result<Value, NuropbError>>) -> Value {
    match result {
        Some(Ok(v)) => v.clone(),
        other => panic!("expected a result, got {other:?}"),
    }
}
