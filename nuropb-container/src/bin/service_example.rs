//! Python NuroPb's `ServiceExample` in a service container: with `--etcd`, under leader election
//! with the other instances of the service (Rust or Python); without, standalone.
//!
//! ```sh
//! NUROPB_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/nuropb-example \
//!     cargo run -p nuropb-container --bin service_example -- --etcd http://127.0.0.1:2379
//! ```
//! Without `NUROPB_AMQP_URL` it runs on an embedded testkit broker. It prints one JSON line per
//! container notice (`{"notice": …}`: state changes, election, leader-only writes, advice) and
//! per event received; logs go to stderr. SIGINT or SIGTERM stops it gracefully: its lease is
//! revoked, handing any leadership over at once.

use clap::Parser;
use nuropb_api::examples::{
    ExampleMesh, ServiceExampleArgs, init_tracing, service_example_service,
};
use nuropb_container::{Container, EtcdSettings, HealthConfig};
use nuropb_tokio::TokioRuntime;
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, for the timing of what is printed.
fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

#[derive(Parser)]
#[command(about = "Serves Python NuroPb's ServiceExample in a service container")]
struct Args {
    #[command(flatten)]
    service: ServiceExampleArgs,
    /// etcd endpoints (repeatable): elect a leader with the other instances; standalone without.
    #[arg(long = "etcd")]
    etcd: Vec<String>,
    /// The leader's prefetch, when it should be smaller than the followers' (`--prefetch`).
    #[arg(long)]
    leader_prefetch: Option<u16>,
    /// Seconds between the leader's health checks.
    #[arg(long, default_value_t = 10)]
    health_every: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let args = Args::parse();
    let runtime = TokioRuntime::shared();
    let mesh = ExampleMesh::unconfigured(runtime.clone())?;
    let service_args = args.service.clone();
    let factory = move || service_example_service(runtime.clone(), &service_args);
    let mut container = Container::new(mesh.connector(), factory)
        .create_vhost(mesh.embedded.is_none())
        .health(HealthConfig {
            every: Duration::from_secs(args.health_every.max(1)),
            ..HealthConfig::default()
        });
    if !args.etcd.is_empty() {
        container = container.etcd(EtcdSettings::new(args.etcd));
    }
    if let Some(id) = args.service.instance_id {
        container = container.instance_id(id);
    }
    if let Some(prefetch) = args.leader_prefetch {
        container = container.leader_prefetch(prefetch);
    }
    let handle = container.start();
    let mut notices = handle.notices();
    println!(
        "{}",
        json!({"container": {"service": handle.service(), "instance_id": handle.instance_id(),
                             "broker": mesh.settings.to_string()}})
    );
    let printer = tokio::spawn(async move {
        loop {
            match notices.recv().await {
                Ok(notice) => println!("{}", json!({ "notice": notice, "at_ms": unix_ms() })),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    println!("{}", json!({ "notices_lost": n }));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    handle.stop().await;
    // The last notices (stopping, stopped) are printed before the process ends.
    tokio::time::sleep(Duration::from_millis(50)).await;
    printer.abort();
    Ok(())
}
