//! Full RPC round trips through the simulator: client endpoint → broker → service endpoint →
//! broker → client endpoint, every byte through the AMQP codecs of both sides and the broker,
//! on one core, no sockets, no latency, the wire tap off.
//!
//! - `rpc/pipelined_1000`: 1,000 requests issued at once, run until all 1,000 responses are in
//!   (prefetch 1,000 on the service); the figure is round trips per second.
//! - `rpc/one_at_a_time`: one request, run until its response, again and again.
//!
//! `cargo bench -p nuropb-testkit --bench mesh_rpc`

use criterion::{Criterion, Throughput, criterion_group};
use nuropb_proto::describe::{MethodSpec, ServiceSpec};
use nuropb_proto::mesh::{EndpointConfig, Request, ServiceConfig};
use nuropb_testkit::sim::{NodeId, Reply, Sim, SimConfig, Work};
use serde_json::json;
use std::time::Duration;

fn mesh(prefetch: u16) -> (Sim, NodeId, NodeId) {
    let config = SimConfig {
        tap: false,
        record: false,
        max_steps: u64::MAX,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(1, config);
    let mut service = ServiceConfig::new(ServiceSpec::new("bench").method(MethodSpec::new("echo")));
    service.prefetch = prefetch;
    let handler = Box::new(|work: &Work<'_>| match work {
        Work::Call(call) => Reply::ok(serde_json::Value::Object(call.params.clone())),
        Work::Event(_) => Reply::ok(serde_json::Value::Null),
    });
    let s = sim.add_endpoint(
        "bench",
        EndpointConfig::service("/", "s1", service, 1),
        Some(handler),
    );
    let c = sim.add_endpoint("client", EndpointConfig::client("/", "c1", 2), None);
    sim.run_until("ready", Duration::from_secs(5), |sim| {
        sim.record(s).readies == 1 && sim.record(c).readies == 1
    });
    (sim, s, c)
}

fn request() -> Request {
    Request::new("bench", "echo").params(json!({"order": 1234, "item": "tea", "qty": 2}))
}

fn round_trips(sim: &mut Sim, client: NodeId, n: usize) {
    for _ in 0..n {
        sim.request(client, request()).unwrap();
    }
    sim.run_until("responses", Duration::from_secs(60), |s| {
        s.record(client).responses.len() == n
    });
    let responses = sim.take_responses(client);
    assert!(responses.values().all(|r| r.is_ok()));
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("rpc");
    const N: usize = 1000;
    group.throughput(Throughput::Elements(N as u64));
    let (mut sim, _, client) = mesh(N as u16);
    group.bench_function("pipelined_1000", |b| {
        b.iter(|| round_trips(&mut sim, client, N))
    });
    group.throughput(Throughput::Elements(1));
    let (mut sim, _, client) = mesh(1);
    group.bench_function("one_at_a_time", |b| {
        b.iter(|| round_trips(&mut sim, client, 1))
    });
    group.finish();
}

criterion_group!(benches, bench);

/// `NUROPB_BENCH_BATCHES=<n>` runs `n` pipelined batches of 1,000 without criterion and exits:
/// a fixed amount of work for `perf stat` (instructions per round trip do not depend on the
/// machine's load).
fn main() {
    if let Some(n) = std::env::var("NUROPB_BENCH_BATCHES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let (mut sim, _, client) = mesh(1000);
        for _ in 0..n {
            round_trips(&mut sim, client, 1000);
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
