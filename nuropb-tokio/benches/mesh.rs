//! NuroPb on the real broker: requests per second with 1 and with 64 outstanding (prefetch 1 and
//! 64), latency percentiles, events per second into one service, and the CPU time the client
//! and the service spend per request, read from each process's own counters.
//!
//! ```sh
//! cargo bench -p nuropb-tokio --bench mesh                  # RabbitMQ on 127.0.0.1:5672
//! NUROPB_TEST_AMQP_URL=amqp://… cargo bench -p nuropb-tokio --bench mesh
//! ```
//! The service runs in a child process (this binary, re-executed), so that the CPU counts of
//! client and service are separate.

use nuropb_tokio::{CallContext, ConnectionSettings, Method, NuropbError, Request, Service};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ROLE: &str = "NUROPB_BENCH_ROLE";

/// User + system CPU seconds of process `pid` ("self" for this one), from /proc.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, f)| f.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn settings() -> ConnectionSettings {
    let base = std::env::var("NUROPB_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    ConnectionSettings::from_url(&base)
        .expect("an AMQP URL")
        .with_vhost("nuropb-bench")
}

fn bench_service(prefetch: u16, events: Arc<AtomicU64>) -> Service {
    let seen = events.clone();
    Service::new("bench")
        .prefetch(prefetch)
        .method(Method::new(
            "echo",
            |_ctx: CallContext, p: Value| async move { Ok::<_, NuropbError>(p) },
        ))
        .method(Method::new(
            "events_seen",
            move |_ctx: CallContext, _p: ()| {
                let n = events.load(Ordering::SeqCst);
                async move { Ok::<_, NuropbError>(n) }
            },
        ))
        .subscribe("bench.#")
        .on_event(move |_event, _ctx| {
            seen.fetch_add(1, Ordering::Relaxed);
            async { Ok(()) }
        })
}

/// The service side: serve until stdin closes.
async fn serve(prefetch: u16) {
    let served = nuropb_tokio::connector(settings())
        .serve(bench_service(prefetch, Arc::default()))
        .await
        .expect("the bench service connects");
    println!("ready");
    let _ =
        tokio::task::spawn_blocking(|| std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1]))
            .await;
    served.shutdown(Duration::from_secs(2)).await;
}

struct ServiceProcess(Child);

impl ServiceProcess {
    fn start(prefetch: u16) -> ServiceProcess {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(ROLE, format!("service:{prefetch}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the service process");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "ready");
        ServiceProcess(child)
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn requests(outstanding: usize, total: usize) {
    let service = ServiceProcess::start(outstanding as u16);
    let client = nuropb_tokio::connector(settings()).client().await.unwrap();
    let payload = json!({"param1": "value1", "param2": {"param2a": "value2a"}});
    // Warm up.
    for _ in 0..200 {
        client.request("bench", "echo", &payload).await.unwrap();
    }
    let (client_cpu, service_cpu) = (cpu_seconds("self"), cpu_seconds(&service.pid()));
    let started = Instant::now();
    let per_worker = total / outstanding;
    let workers: Vec<_> = (0..outstanding)
        .map(|_| {
            let client = client.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_worker);
                for _ in 0..per_worker {
                    let t = Instant::now();
                    client
                        .send(Request::new("bench", "echo").params(payload.clone()))
                        .await
                        .unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for worker in workers {
        latencies.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let client_cpu = cpu_seconds("self") - client_cpu;
    let service_cpu = cpu_seconds(&service.pid()) - service_cpu;
    latencies.sort();
    let n = latencies.len() as f64;
    println!(
        "requests, {outstanding:>2} outstanding (prefetch {outstanding}): {:>8.0} req/s | p50 {:.3} ms p90 {:.3} ms p99 {:.3} ms | CPU per request: client {:.1} µs + service {:.1} µs = {:.1} µs",
        n / elapsed,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.9).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        client_cpu / n * 1e6,
        service_cpu / n * 1e6,
        (client_cpu + service_cpu) / n * 1e6,
    );
    client.shutdown(Duration::from_secs(2)).await;
}

async fn events(total: u64) {
    let service = ServiceProcess::start(256);
    let client = nuropb_tokio::connector(settings()).client().await.unwrap();
    let seen = |client: nuropb_tokio::Client| async move {
        client
            .request("bench", "events_seen", json!({}))
            .await
            .unwrap()
            .as_u64()
            .unwrap()
    };
    let before = seen(client.clone()).await;
    let (client_cpu, service_cpu) = (cpu_seconds("self"), cpu_seconds(&service.pid()));
    let started = Instant::now();
    for i in 0..total {
        client
            .publish_event(
                "bench.tick",
                json!({"i": i, "payload": "x".repeat(64)}),
                json!({}),
                None,
            )
            .await
            .unwrap();
    }
    while seen(client.clone()).await < before + total {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let client_cpu = cpu_seconds("self") - client_cpu;
    let service_cpu = cpu_seconds(&service.pid()) - service_cpu;
    println!(
        "events into one service: {:>8.0} events/s | CPU per event: publisher {:.1} µs + service {:.1} µs",
        total as f64 / elapsed,
        client_cpu / total as f64 * 1e6,
        service_cpu / total as f64 * 1e6,
    );
    client.shutdown(Duration::from_secs(2)).await;
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        let prefetch = role
            .strip_prefix("service:")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        return runtime.block_on(serve(prefetch));
    }
    // `cargo bench` passes --bench; `cargo test --benches` runs this once briefly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let settings = settings();
        nuropb_tokio::create_vhost(&settings)
            .await
            .expect("RabbitMQ's management API");
        let client = nuropb_tokio::connector(settings.clone())
            .client()
            .await
            .expect("RabbitMQ");
        client.configure_mesh().await.unwrap();
        client.shutdown(Duration::from_secs(1)).await;
        let scale = if quick { 1 } else { 10 };
        requests(1, 2_000 * scale).await;
        requests(64, 10_000 * scale).await;
        events(10_000 * scale as u64).await;
    });
}
