//! The container's figures, measured on a real etcd and RabbitMQ, Rust and Python side by side:
//!
//! - `failover`: from the leader's death (SIGKILL) to a new leader's election, 10 times;
//! - `follower`: from the leader's `rmq-config-ok` to a waiting follower consuming — Rust's
//!   watch against Python's 5 s poll;
//! - `traffic`: etcd traffic per instance per minute (etcd's own gRPC counters), a leader, a
//!   follower, and a Python leader.
//!
//! ```sh
//! flock /work/bench.lock cargo bench -p nuropb-container --bench election [-- failover follower traffic]
//! ```
//! Under `cargo test --benches` (no `--bench` argument) it makes one smoke run instead: a single
//! Rust follower's start, in seconds.

#[path = "../tests/support/mod.rs"]
mod support;

use nuropb_container::keys::{CONFIG_OK, Keys};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{Etcd, Instance, PythonInstance, TestMesh, unique, wait_for};

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn median(mut values: Vec<i64>) -> i64 {
    values.sort_unstable();
    values[values.len() / 2]
}

fn summary(name: &str, values: &[i64]) {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    println!(
        "{name}: median {} ms, min {} ms, max {} ms over {} runs {sorted:?}",
        median(values.to_vec()),
        sorted[0],
        sorted[sorted.len() - 1],
        values.len()
    );
}

/// The time of the first notice of `kind` at or after `since` (unix ms).
fn notice_at(instance: &Instance, kind: &str, since: i64) -> Option<i64> {
    instance.notices_of(kind).iter().find_map(|l| {
        let at = l["at_ms"].as_i64()?;
        (at >= since).then_some(at)
    })
}

async fn failover(runs: usize) {
    let etcd = Etcd::start().await;
    let mesh = TestMesh::new("bench-failover");
    let service = unique("bench-failover");
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(Instance::start(&mesh, &service, Some(&etcd.endpoint()), &[]).await);
    }
    let mut took = Vec::new();
    for _ in 0..runs {
        for i in &instances {
            i.wait_state(None, Some("running"), Duration::from_secs(30))
                .await;
        }
        let leader = wait_for(
            "a leader",
            Duration::from_secs(30),
            || {
                instances
                    .iter()
                    .position(|i| i.role().as_deref() == Some("leader"))
            },
            String::new,
        )
        .await;
        // Anywhere in the keep-alive period, as a crash would fall.
        tokio::time::sleep(Duration::from_millis(1000 + (unix_ms() % 4000) as u64)).await;
        let killed = unix_ms();
        instances[leader].kill();
        instances.remove(leader);
        let elected = wait_for(
            "a new leader",
            Duration::from_secs(30),
            || {
                instances
                    .iter()
                    .find_map(|i| notice_at(i, "elected", killed))
            },
            || instances.iter().map(Instance::report).collect(),
        )
        .await;
        took.push(elected - killed);
        instances.push(Instance::start(&mesh, &service, Some(&etcd.endpoint()), &[]).await);
    }
    summary("leader death to a new leader (SIGKILL, 15 s lease)", &took);
}

/// A leader key held by the bench under a kept-alive lease, with no flag yet.
async fn hold_leader(
    client: &mut etcd_client::Client,
    keys: &Keys,
) -> (i64, etcd_client::LeaseKeeper) {
    let lease = client.lease_grant(15, None).await.unwrap().id();
    let (keeper, _) = client.lease_keep_alive(lease).await.unwrap();
    let options = etcd_client::PutOptions::new().with_lease(lease);
    client
        .put(keys.leader(), "bench-leader", Some(options))
        .await
        .unwrap();
    (lease, keeper)
}

async fn follower(runs: usize, python_too: bool) {
    let etcd = Etcd::start().await;
    let mesh = TestMesh::new("bench-follower");
    let mut client = etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .unwrap();
    // The mesh is configured once, as a leader would have.
    nuropb_tokio::configure_mesh(&mesh.url).await.unwrap();
    let mut rust = Vec::new();
    for _ in 0..runs {
        let service = unique("bench-rust");
        let keys = Keys::new(&service);
        let (lease, mut keeper) = hold_leader(&mut client, &keys).await;
        let instance = Instance::start(&mesh, &service, Some(&etcd.endpoint()), &[]).await;
        instance
            .wait_state(
                Some("follower"),
                Some("waiting-for-config"),
                Duration::from_secs(30),
            )
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        keeper.keep_alive().await.unwrap();
        let put = unix_ms();
        client.put(keys.config_ok(), CONFIG_OK, None).await.unwrap();
        let serving = wait_for(
            "the follower consuming",
            Duration::from_secs(30),
            || notice_at(&instance, "serving", put),
            || instance.report(),
        )
        .await;
        rust.push(serving - put);
        client.lease_revoke(lease).await.unwrap();
    }
    summary("Rust follower: flag written to consuming (watch)", &rust);
    if !python_too {
        return;
    }
    let mut python = Vec::new();
    for _ in 0..runs {
        let service = unique("bench-py");
        let keys = Keys::new(&service);
        let (lease, mut keeper) = hold_leader(&mut client, &keys).await;
        // Python 0.1.8's follower fails to start when the flag is absent (its `range` answer has
        // no kvs and `len(None)` raises), so the flag is there, but not `True`: it polls.
        client.put(keys.config_ok(), "False", None).await.unwrap();
        let instance = PythonInstance::start(&mesh, &service, etcd.port()).await;
        instance
            .wait(
                "Python waiting for the flag",
                Duration::from_secs(60),
                |p| p.state().as_deref() == Some("startup-leader-decided") && !p.started_failed(),
            )
            .await;
        // Into its polling loop, at a point of its 5 s period that varies from run to run.
        tokio::time::sleep(Duration::from_millis(1000 + (unix_ms() % 5000) as u64)).await;
        keeper.keep_alive().await.unwrap();
        let put = unix_ms();
        client.put(keys.config_ok(), CONFIG_OK, None).await.unwrap();
        let started = wait_for(
            "the Python follower consuming",
            Duration::from_secs(30),
            || {
                instance.lines().iter().find_map(|l| {
                    (l["started"] == serde_json::Value::Bool(true)).then(|| l["at_ms"].as_i64())?
                })
            },
            || instance.report(),
        )
        .await;
        python.push(started - put);
        client.lease_revoke(lease).await.unwrap();
    }
    summary(
        "Python follower: flag written to consuming (5 s poll)",
        &python,
    );
}

/// etcd's gRPC counters: (messages received, messages sent, bytes received, bytes sent).
fn counters(etcd: &Etcd) -> [f64; 4] {
    let output = std::process::Command::new("curl")
        .args(["-s", &format!("{}/metrics", etcd.endpoint())])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let sum = |name: &str| -> f64 {
        text.lines()
            .filter(|l| {
                l.starts_with(name)
                    && (l.len() == name.len() || l[name.len()..].starts_with([' ', '{']))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    [
        sum("grpc_server_msg_received_total"),
        sum("grpc_server_msg_sent_total"),
        sum("etcd_network_client_grpc_received_bytes_total"),
        sum("etcd_network_client_grpc_sent_bytes_total"),
    ]
}

async fn per_minute(etcd: &Etcd, window: Duration, instances: f64) -> [f64; 4] {
    let before = counters(etcd);
    tokio::time::sleep(window).await;
    let after = counters(etcd);
    let scale = 60.0 / window.as_secs_f64() / instances;
    std::array::from_fn(|i| (after[i] - before[i]) * scale)
}

fn show(who: &str, t: [f64; 4]) {
    println!(
        "{who}: {:.0} messages in, {:.0} out, {:.1} KiB in, {:.1} KiB out per minute",
        t[0],
        t[1],
        t[2] / 1024.0,
        t[3] / 1024.0
    );
}

async fn traffic() {
    let window = Duration::from_secs(60);
    let etcd = Etcd::start().await;
    let mesh = TestMesh::new("bench-traffic");
    let service = unique("bench-traffic");
    let leader = Instance::start(
        &mesh,
        &service,
        Some(&etcd.endpoint()),
        &["--health-every", "10"],
    )
    .await;
    leader
        .wait_state(Some("leader"), Some("running"), Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let alone = per_minute(&etcd, window, 1.0).await;
    show("Rust leader (health record every 10 s)", alone);
    let followers = [
        Instance::start(&mesh, &service, Some(&etcd.endpoint()), &[]).await,
        Instance::start(&mesh, &service, Some(&etcd.endpoint()), &[]).await,
    ];
    for f in &followers {
        f.wait_state(Some("follower"), Some("running"), Duration::from_secs(30))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = per_minute(&etcd, window, 1.0).await;
    // Each follower: what the two added, halved (the leader's watch also sees nothing new).
    show(
        "Rust follower",
        std::array::from_fn(|i| (all[i] - alone[i]) / 2.0),
    );
    drop((leader, followers));

    let python_service = unique("bench-traffic-py");
    let python = PythonInstance::start(&mesh, &python_service, etcd.port()).await;
    python
        .wait("Python leads", Duration::from_secs(60), |p| p.started())
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    show("Python leader", per_minute(&etcd, window, 1.0).await);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        follower(1, false).await;
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    if wanted("failover") {
        failover(10).await;
    }
    if wanted("follower") {
        follower(10, true).await;
    }
    if wanted("traffic") {
        traffic().await;
    }
}
