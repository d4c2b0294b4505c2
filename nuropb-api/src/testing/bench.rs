//! The benchmark on the real broker, for any runtime: requests per second with 1 and with 64
//! outstanding (prefetch 1 and 64), latency percentiles, events per second into one service, and
//! the CPU time client and service spend per request, read from each process's own counters.
//!
//! The service runs in a child process — the bench binary re-executed with `NUROPB_BENCH_ROLE` —
//! so that the CPU counts of client and service are separate. [`run`] measures each runtime given
//! in turn, in one run, so that their figures compare side by side, and Python NuroPb 0.1.8
//! (`interop/python_bench.py`, client and service in their own processes) in the same scenarios.

use crate::runtime::{BoxFuture, Runtime};
use crate::service::{Method, Service};
use crate::settings::ConnectionSettings;
use crate::{CallContext, Client, Connector, Request, helpers};
use futures_channel::oneshot;
use nuropb_proto::NuropbError;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const ROLE: &str = "NUROPB_BENCH_ROLE";

/// A runtime to measure: its name, how to make it, how to run a future to completion on it.
#[derive(Clone, Copy)]
pub struct BenchRuntime {
    /// Its name in the report.
    pub name: &'static str,
    /// The runtime.
    pub runtime: fn() -> Arc<dyn Runtime>,
    /// Runs a future to completion on it.
    pub block_on: fn(BoxFuture<()>),
}

/// One scenario's figures.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Requests (or events) per second.
    pub rate: f64,
    /// Latency percentiles p50, p90, p99 in milliseconds (requests only).
    pub latency_ms: Option<[f64; 3]>,
    /// CPU microseconds per request or event: client (publisher), service.
    pub cpu_us: [f64; 2],
}

/// User + system CPU seconds of process `pid` ("self" for this one), from /proc.
pub fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
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
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

fn settings() -> ConnectionSettings {
    let base = std::env::var("NUROPB_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    ConnectionSettings::from_url(&base)
        .expect("NUROPB_TEST_AMQP_URL must be an AMQP URL")
        .with_vhost("nuropb-bench")
}

fn bench_service(prefetch: u16) -> Service {
    let events = Arc::new(AtomicU64::new(0));
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

/// The child process: serve until stdin closes.
async fn serve(runtime: Arc<dyn Runtime>, prefetch: u16) {
    let served = Connector::new(runtime, settings())
        .serve(bench_service(prefetch))
        .await
        .expect("the bench service connects");
    println!("ready");
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
        let _ = tx.send(());
    });
    let _ = rx.await;
    served.shutdown(Duration::from_secs(2)).await;
}

struct ServiceProcess(Child);

impl ServiceProcess {
    fn start(runtime: &str, prefetch: u16) -> ServiceProcess {
        ServiceProcess::spawn(
            Command::new(std::env::current_exe().expect("the bench binary"))
                .env(ROLE, format!("{runtime}:{prefetch}")),
            "ready",
        )
    }

    /// Starts `command` and waits for it to print `ready` on its first line.
    fn spawn(command: &mut Command, ready: &str) -> ServiceProcess {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the service process");
        let mut line = String::new();
        let stdout = child.stdout.as_mut().expect("piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the service says it is ready");
        assert_eq!(line.trim(), ready, "the service did not start");
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

/// p50, p90 and p99 of `latencies`, in milliseconds.
pub fn percentiles(mut latencies: Vec<Duration>) -> [f64; 3] {
    latencies.sort();
    let at = |p: f64| {
        latencies[((latencies.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
    };
    [at(0.5), at(0.9), at(0.99)]
}

/// Requests with `outstanding` callers at once (and that prefetch), `total` in all.
pub async fn requests(bench: &BenchRuntime, outstanding: usize, total: usize) -> Figures {
    let runtime = (bench.runtime)();
    let service = ServiceProcess::start(bench.name, outstanding as u16);
    let client = Connector::new(runtime.clone(), settings())
        .client()
        .await
        .expect("connect");
    let payload = json!({"param1": "value1", "param2": {"param2a": "value2a"}});
    for _ in 0..200 {
        client
            .request("bench", "echo", &payload)
            .await
            .expect("warm-up");
    }
    let (client_cpu, service_cpu) = (cpu_seconds("self"), cpu_seconds(&service.pid()));
    let started = Instant::now();
    let per_caller = total / outstanding;
    let callers: Vec<_> = (0..outstanding)
        .map(|_| {
            let (client, payload) = (client.clone(), payload.clone());
            let (tx, rx) = oneshot::channel();
            runtime.spawn(Box::pin(async move {
                let mut latencies = Vec::with_capacity(per_caller);
                for _ in 0..per_caller {
                    let t = Instant::now();
                    client
                        .send(Request::new("bench", "echo").params(payload.clone()))
                        .await
                        .expect("a bench request");
                    latencies.push(t.elapsed());
                }
                let _ = tx.send(latencies);
            }));
            rx
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for caller in callers {
        latencies.extend(caller.await.expect("a caller finished"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let client_cpu = cpu_seconds("self") - client_cpu;
    let service_cpu = cpu_seconds(&service.pid()) - service_cpu;
    client.shutdown(Duration::from_secs(2)).await;
    let n = latencies.len() as f64;
    Figures {
        rate: n / elapsed,
        latency_ms: Some(percentiles(latencies)),
        cpu_us: [client_cpu / n * 1e6, service_cpu / n * 1e6],
    }
}

async fn events_seen(client: &Client) -> u64 {
    client
        .request("bench", "events_seen", json!({}))
        .await
        .expect("events_seen")
        .as_u64()
        .unwrap_or(0)
}

/// `total` events published to one subscribed service, as fast as the publisher can.
pub async fn events(bench: &BenchRuntime, total: u64) -> Figures {
    let runtime = (bench.runtime)();
    let service = ServiceProcess::start(bench.name, 256);
    let client = Connector::new(runtime.clone(), settings())
        .client()
        .await
        .expect("connect");
    let before = events_seen(&client).await;
    let (client_cpu, service_cpu) = (cpu_seconds("self"), cpu_seconds(&service.pid()));
    let started = Instant::now();
    // As fast as the connection writes: past half the send limits, let it catch up.
    let limits = client.send_limits();
    for i in 0..total {
        while client.unsent().reaches(0.5, &limits) {
            runtime
                .sleep_until(Instant::now() + Duration::from_micros(200))
                .await;
        }
        client
            .publish_event(
                "bench.tick",
                json!({"i": i, "payload": "x".repeat(64)}),
                json!({}),
                None,
            )
            .expect("publish");
    }
    while events_seen(&client).await < before + total {
        runtime
            .sleep_until(Instant::now() + Duration::from_millis(5))
            .await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let client_cpu = cpu_seconds("self") - client_cpu;
    let service_cpu = cpu_seconds(&service.pid()) - service_cpu;
    client.shutdown(Duration::from_secs(2)).await;
    let n = total as f64;
    Figures {
        rate: n / elapsed,
        latency_ms: None,
        cpu_us: [client_cpu / n * 1e6, service_cpu / n * 1e6],
    }
}

/// The bench's AMQP URL, for the Python participants.
fn python_url() -> String {
    use nuropb_proto::mesh::management::percent_encode;
    let s = settings();
    let scheme = if s.tls.is_some() { "amqps" } else { "amqp" };
    format!(
        "{scheme}://{}:{}@{}:{}/{}",
        percent_encode(&s.username),
        percent_encode(&s.password),
        s.host,
        s.port(),
        percent_encode(&s.vhost)
    )
}

/// Python NuroPb 0.1.8 (`interop/python_bench.py`) in the same scenario, client and service each
/// in its own process: the client's `role` (`requests` or `events`) and its counts.
fn python(prefetch: u16, role: &str, counts: &[usize]) -> Figures {
    use crate::testing::interop::{python, run_script, script};
    let url = python_url();
    let service = ServiceProcess::spawn(
        Command::new(python()).arg(script("python_bench.py")).args([
            "service",
            &url,
            &prefetch.to_string(),
        ]),
        r#"{"ready": true}"#,
    );
    let pid = service.pid();
    let counts: Vec<String> = counts.iter().map(ToString::to_string).collect();
    let mut args = vec![role, url.as_str(), pid.as_str()];
    args.extend(counts.iter().map(String::as_str));
    let out = run_script("python_bench.py", &args);
    let elapsed = out["elapsed"].as_f64().expect("elapsed");
    let cpu = |i: usize| out["cpu"][i].as_f64().expect("cpu seconds");
    let latencies: Option<Vec<Duration>> = out["latencies"].as_array().map(|l| {
        l.iter()
            .filter_map(Value::as_f64)
            .map(Duration::from_secs_f64)
            .collect()
    });
    let n = match &latencies {
        Some(l) => l.len() as f64,
        None => counts[0].parse().expect("a count"),
    };
    Figures {
        rate: n / elapsed,
        latency_ms: latencies.map(percentiles),
        cpu_us: [cpu(0) / n * 1e6, cpu(1) / n * 1e6],
    }
}

fn report(runtime: &str, scenario: &str, f: &Figures) {
    let latency = match f.latency_ms {
        Some([p50, p90, p99]) => format!(" | p50 {p50:.3} ms p90 {p90:.3} ms p99 {p99:.3} ms"),
        None => String::new(),
    };
    println!(
        "{runtime:>9} {scenario:<32} {:>8.0}/s{latency} | CPU/msg client {:.1} µs + service {:.1} µs = {:.1} µs",
        f.rate,
        f.cpu_us[0],
        f.cpu_us[1],
        f.cpu_us[0] + f.cpu_us[1]
    );
}

/// The bench binary's main: serves when re-executed as the service, else measures each runtime
/// in `runtimes` in turn. `cargo bench` passes `--bench` for the full run; without it (as under
/// `cargo test --benches`) a short run checks that everything works. Words after `--` pick
/// scenarios: `cargo bench -p nuropb-async-std --bench mesh -- tokio floor` runs the floor and
/// tokio's scenarios only.
pub fn run(runtimes: &[BenchRuntime]) {
    if let Ok(role) = std::env::var(ROLE) {
        let (name, prefetch) = role
            .split_once(':')
            .expect("NUROPB_BENCH_ROLE is runtime:prefetch");
        let bench = runtimes
            .iter()
            .find(|b| b.name == name)
            .expect("a known runtime");
        let prefetch: u16 = prefetch.parse().expect("a prefetch");
        let runtime = (bench.runtime)();
        return (bench.block_on)(Box::pin(serve(runtime, prefetch)));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scale = if args.iter().any(|a| a == "--bench") {
        10
    } else {
        1
    };
    // As with criterion, words on the command line pick the scenarios whose "runtime scenario"
    // label contains one of them.
    let filters: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let wanted = |runtime: &str, scenario: &str| {
        let label = format!("{runtime} {scenario}");
        filters.is_empty() || filters.iter().any(|f| label.contains(f))
    };
    let baseline = runtimes[0];
    (baseline.block_on)(Box::pin(async move {
        let settings = settings();
        helpers::create_vhost(&settings)
            .await
            .expect("RabbitMQ's management API");
        helpers::declare_mesh((baseline.runtime)(), &settings)
            .await
            .expect("RabbitMQ declares the mesh");
    }));
    // Client and server share this process: its CPU figure is both sides together.
    let floor = ("bare AMQP", "rpc, 1 outstanding (the floor)");
    if wanted(floor.0, floor.1) {
        report(floor.0, floor.1, &raw_rpc(2_000 * scale));
    }
    for bench in runtimes {
        let bench = *bench;
        for (scenario, label) in SCENARIOS {
            if !wanted(bench.name, label) {
                continue;
            }
            (bench.block_on)(Box::pin(async move {
                let figures = match scenario {
                    Scenario::Requests(outstanding, total) => {
                        requests(&bench, outstanding, total * scale).await
                    }
                    Scenario::Events(total) => events(&bench, (total * scale) as u64).await,
                };
                report(bench.name, label, &figures);
            }));
        }
    }
    // Python NuroPb, for comparison, at the same scale.
    for (scenario, label) in SCENARIOS {
        if !wanted("python", label) {
            continue;
        }
        let figures = match scenario {
            Scenario::Requests(outstanding, total) => python(
                outstanding as u16,
                "requests",
                &[outstanding, total * scale],
            ),
            Scenario::Events(total) => python(256, "events", &[total * scale]),
        };
        report("python", label, &figures);
    }
}

/// The scenarios, with their labels.
const SCENARIOS: [(Scenario, &str); 3] = [
    (
        Scenario::Requests(1, 2_000),
        "requests, 1 outstanding, prefetch 1",
    ),
    (
        Scenario::Requests(64, 10_000),
        "requests, 64 outstanding, prefetch 64",
    ),
    (Scenario::Events(10_000), "events into one service"),
];

/// What a scenario measures, and how many messages at scale 1.
#[derive(Clone, Copy)]
enum Scenario {
    /// Requests: how many outstanding, how many in all.
    Requests(usize, usize),
    /// Events: how many in all.
    Events(usize),
}

/// A blocking connection to the broker for the raw baseline: the sans-IO client over a plain
/// `TcpStream`, one thread each side, nothing else.
struct RawConnection {
    conn: nuropb_proto::amqp::Connection,
    sock: std::net::TcpStream,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl RawConnection {
    fn open() -> RawConnection {
        use nuropb_proto::amqp::{Connection, Event};
        let settings = settings();
        let sock = std::net::TcpStream::connect((settings.host.as_str(), settings.port()))
            .expect("the broker");
        sock.set_nodelay(true).expect("nodelay");
        let conn = Connection::new(settings.amqp_config(), Instant::now()).expect("a connection");
        let mut raw = RawConnection {
            conn,
            sock,
            buf: vec![0; 65536],
            out: Vec::new(),
        };
        loop {
            match raw.next() {
                Event::Connected { .. } => break,
                Event::Closed { reply_text, .. } => panic!("refused: {reply_text}"),
                _ => {}
            }
        }
        raw
    }

    /// Writes what the connection wants written, then blocks for the next event.
    fn next(&mut self) -> nuropb_proto::amqp::Event {
        use std::io::Write;
        loop {
            if let Some(event) = self.conn.poll_event() {
                return event;
            }
            self.out.clear();
            self.conn.poll_transmit(&mut self.out);
            self.sock.write_all(&self.out).expect("write");
            let n = self.sock.read(&mut self.buf).expect("read");
            assert!(n > 0, "the broker closed the socket");
            self.conn.handle_input(&self.buf[..n], Instant::now());
        }
    }

    fn channel(&mut self) -> u16 {
        self.conn.open_channel().expect("a channel")
    }
}

/// The floor on this machine: a request/response over the broker with the bare AMQP client,
/// blocking sockets and a thread per side — no NuroPb envelope, no runtime. One outstanding.
pub fn raw_rpc(total: usize) -> Figures {
    use nuropb_proto::amqp::{Consume, Event, Properties, Publish, QueueDeclare};
    let queue = format!("raw-rpc-{}", &crate::random_hex()[..8]);
    let server_queue = queue.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let mut raw = RawConnection::open();
        let ch = raw.channel();
        raw.conn
            .queue_declare(
                ch,
                &QueueDeclare {
                    auto_delete: true,
                    ..QueueDeclare::new(&server_queue)
                },
            )
            .unwrap();
        raw.conn.basic_qos(ch, 1, false).unwrap();
        raw.conn
            .basic_consume(ch, &Consume::new(&server_queue))
            .unwrap();
        let mut started = 0;
        let mut served = 0;
        while served < total + 200 {
            match raw.next() {
                Event::Completed { .. } => {
                    started += 1;
                    if started == 3 {
                        let _ = ready_tx.send(());
                    }
                }
                Event::Delivery(d) => {
                    let reply_to = d.properties.reply_to.clone().expect("reply_to");
                    let props = Properties {
                        correlation_id: d.properties.correlation_id.clone(),
                        ..Properties::default()
                    };
                    raw.conn
                        .basic_publish(ch, &Publish::new("", reply_to.as_str()), &props, &d.body)
                        .unwrap();
                    raw.conn.basic_ack(ch, d.delivery_tag, false).unwrap();
                    served += 1;
                }
                _ => {}
            }
        }
        raw.conn.close(200, "done", Instant::now()).unwrap();
        let _ = raw.next();
    });
    ready_rx.recv().expect("the raw server is ready");
    let mut raw = RawConnection::open();
    let ch = raw.channel();
    let reply = format!("{queue}-reply");
    raw.conn
        .queue_declare(
            ch,
            &QueueDeclare {
                exclusive: true,
                ..QueueDeclare::new(&reply)
            },
        )
        .unwrap();
    raw.conn
        .basic_consume(
            ch,
            &Consume {
                no_ack: true,
                ..Consume::new(&reply)
            },
        )
        .unwrap();
    let mut pending = 2;
    while pending > 0 {
        if let Event::Completed { .. } = raw.next() {
            pending -= 1;
        }
    }
    let body = br#"{"param1": "value1", "param2": {"param2a": "value2a"}}"#;
    let mut latencies = Vec::with_capacity(total);
    let cpu = cpu_seconds("self");
    let started = Instant::now();
    for i in 0..total + 200 {
        let t = Instant::now();
        let props = Properties {
            correlation_id: Some(i.to_string().as_str().into()),
            reply_to: Some(reply.as_str().into()),
            ..Properties::default()
        };
        raw.conn
            .basic_publish(ch, &Publish::new("", &queue), &props, body)
            .unwrap();
        loop {
            if let Event::Delivery(_) = raw.next() {
                break;
            }
        }
        if i >= 200 {
            latencies.push(t.elapsed());
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds("self") - cpu;
    raw.conn.close(200, "done", Instant::now()).unwrap();
    let _ = raw.next();
    let _ = server.join();
    let n = (total + 200) as f64;
    Figures {
        rate: n / elapsed,
        latency_ms: Some(percentiles(latencies)),
        cpu_us: [cpu / n * 1e6, 0.0],
    }
}
