//! The gateway on the machine's RabbitMQ, side by side in one run with the Rust client calling
//! the same service directly and with Python's `nuropb-gw` 0.1.4 in front of it: requests per
//! second with 1 and 64 outstanding (64 over 64 sockets, and over one socket), p50/p99, the
//! gateway's CPU per request, and its resident memory per idle WebSocket.
//!
//! ```sh
//! flock /work/bench.lock cargo bench -p nuropb-gateway --bench gateway
//! ```
//!
//! One load generator — this binary — drives all three. The service (echo, prefetch 64) and
//! each gateway run in processes of their own (this binary re-executed with
//! `NUROPB_GW_BENCH_ROLE`, or `interop/python_gateway.py`), so that CPU and memory are each
//! process's own, read from /proc. Without `--bench` (as under `cargo test --benches`) every
//! scenario runs once, small, to check that it works.

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use nuropb_gateway::{Gateway, Limits};
use nuropb_tokio::testing::bench::{cpu_seconds, percentiles};
use nuropb_tokio::testing::interop::{python, script};
use nuropb_tokio::{CallContext, ConnectionSettings, Method, NuropbError, Request, Service};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ROLE: &str = "NUROPB_GW_BENCH_ROLE";
const PARAMS: &str = r#"{"param1": "value1", "param2": {"param2a": "value2a"}}"#;

fn settings() -> ConnectionSettings {
    let base = std::env::var("NUROPB_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    ConnectionSettings::from_url(&base)
        .expect("NUROPB_TEST_AMQP_URL must be an AMQP URL")
        .with_vhost("nuropb-gw-bench")
}

fn amqp_url() -> String {
    let s = settings();
    format!(
        "amqp://{}:{}@{}:{}/{}",
        s.username,
        s.password,
        s.host,
        s.port(),
        s.vhost
    )
}

/// A current-thread runtime in every process, as `nuropb gateway` runs by default
/// (`--threads 1`): on two cores shared with the broker it does better than a multi-thread one.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Waits for stdin to close: how a child process is told to stop.
async fn stdin_closed() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
        let _ = tx.send(());
    });
    let _ = rx.await;
}

fn serve_service() {
    runtime().block_on(async {
        let service = Service::new("bench").prefetch(64).method(Method::new(
            "echo",
            |_ctx: CallContext, p: Value| async move { Ok::<_, NuropbError>(p) },
        ));
        let served = nuropb_tokio::connector(settings())
            .serve(service)
            .await
            .expect("the bench service connects");
        println!("{}", json!({"listening": "service"}));
        stdin_closed().await;
        served.shutdown(Duration::from_secs(2)).await;
    });
}

fn serve_gateway() {
    runtime().block_on(async {
        let limits = Limits {
            rate_per_second: 1e12,
            rate_burst: 1e12,
            max_in_flight: 4096,
            outbound_queue: 4096,
            ..Limits::default()
        };
        let gateway = Gateway::builder(nuropb_tokio::connector(settings()))
            .allow_anonymous(true)
            .limits(limits)
            .service("bench")
            .start()
            .await
            .expect("the gateway connects");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!(
            "{}",
            json!({"listening": listener.local_addr().unwrap().to_string()})
        );
        tokio::select! {
            _ = gateway.serve(listener) => {}
            () = stdin_closed() => {}
        }
        gateway.shutdown().await;
    });
}

/// The interop Python, with `nuropb-gw==0.1.4` installed into its venv when missing.
fn python_with_nuropb_gw() -> std::path::PathBuf {
    let python = python();
    let has = |python: &std::path::Path| {
        Command::new(python)
            .args(["-c", "import nuropb_gw"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has(&python) {
        let pip = python.with_file_name("pip");
        let installed = Command::new(pip)
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "nuropb-gw==0.1.4",
            ])
            .status();
        assert!(
            installed.is_ok_and(|s| s.success()),
            "pip install nuropb-gw==0.1.4 failed"
        );
    }
    assert!(has(&python), "{} cannot import nuropb_gw", python.display());
    python
}

/// A child process that prints `{"listening": ADDR}` once it serves; stopped by closing its
/// stdin when dropped.
struct Process {
    child: Child,
    addr: String,
}

impl Process {
    fn spawn(command: &mut Command) -> Process {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start a bench process");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .expect("the process says where it listens");
        let parsed: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("a bench process did not start: {line:?}"));
        Process {
            child,
            addr: parsed["listening"].as_str().unwrap().to_owned(),
        }
    }

    fn role(role: &str) -> Process {
        Process::spawn(Command::new(std::env::current_exe().unwrap()).env(ROLE, role))
    }

    fn python_gateway() -> Process {
        Process::spawn(
            Command::new(python_with_nuropb_gw())
                .arg(script("python_gateway.py"))
                .arg(amqp_url()),
        )
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Resident memory, in KiB.
    fn rss_kib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// One scenario's figures.
struct Figures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU microseconds per request of the measured process (the gateway, or the direct client).
    cpu_us: f64,
}

fn figures(latencies: Vec<Duration>, elapsed: f64, cpu: f64) -> Figures {
    let n = latencies.len() as f64;
    let [p50, _, p99] = percentiles(latencies);
    Figures {
        rate: n / elapsed,
        p50_ms: p50,
        p99_ms: p99,
        cpu_us: cpu / n * 1e6,
    }
}

/// Measures `tasks` (each already warmed up and waiting at `barrier`) between the barrier and
/// their end, with the CPU of process `pid`.
async fn measure(
    tasks: Vec<tokio::task::JoinHandle<Vec<Duration>>>,
    barrier: &tokio::sync::Barrier,
    pid: &str,
) -> Figures {
    barrier.wait().await;
    let (cpu, started) = (cpu_seconds(pid), Instant::now());
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a load task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    figures(latencies, elapsed, cpu_seconds(pid) - cpu)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(addr: &str) -> Ws {
    let mut request = format!("ws://{addr}/websocket")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer accesstokentest1".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("a socket");
    // The hello event.
    loop {
        if let Some(Ok(Message::Text(_))) = ws.next().await {
            break;
        }
    }
    ws
}

/// The trace id of a response frame (`"trace_id":"N"` or nuropb-gw's `"trace_id": "N"`), and
/// whether it carries no error.
fn trace_of(text: &str) -> (u64, bool) {
    let at = text.find("\"trace_id\"").expect("a response frame") + 10;
    let rest = text[at..].trim_start_matches([':', ' ', '"']);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let ok = text.contains("\"error\":null") || text.contains("\"error\": null");
    (digits.parse().expect("a numeric trace id"), ok)
}

/// `count` requests on `ws`, `outstanding` at a time; their latencies.
async fn ws_requests(ws: &mut Ws, outstanding: usize, count: usize) -> Vec<Duration> {
    let mut started: HashMap<u64, Instant> = HashMap::with_capacity(outstanding * 2);
    let mut latencies = Vec::with_capacity(count);
    let mut sent = 0u64;
    let frame = |n: u64| {
        Message::text(format!(
            r#"{{"type": "request", "payload": {{"service": "bench", "method": "echo", "params": {PARAMS}, "trace_id": "{n}"}}}}"#
        ))
    };
    while (sent as usize) < outstanding.min(count) {
        started.insert(sent, Instant::now());
        ws.feed(frame(sent)).await.expect("send");
        sent += 1;
    }
    ws.flush().await.expect("flush");
    while latencies.len() < count {
        let text = match ws.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            other => panic!("the socket failed: {other:?}"),
        };
        let (n, ok) = trace_of(&text);
        assert!(ok, "a bench request failed: {text}");
        if let Some(t) = started.remove(&n) {
            latencies.push(t.elapsed());
        }
        if (sent as usize) < count {
            started.insert(sent, Instant::now());
            ws.send(frame(sent)).await.expect("send");
            sent += 1;
        }
    }
    latencies
}

/// `total` requests over `sockets` WebSockets to the gateway at `addr`, `outstanding` in flight
/// on each.
async fn ws_load(gateway: &Process, sockets: usize, outstanding: usize, total: usize) -> Figures {
    let barrier = Arc::new(tokio::sync::Barrier::new(sockets + 1));
    let mut tasks = Vec::new();
    for _ in 0..sockets {
        let mut ws = connect(&gateway.addr).await;
        let barrier = barrier.clone();
        let count = total / sockets;
        tasks.push(tokio::spawn(async move {
            ws_requests(&mut ws, outstanding, (outstanding * 4).max(50)).await;
            barrier.wait().await;
            let latencies = ws_requests(&mut ws, outstanding, count).await;
            let _ = ws.close(None).await;
            latencies
        }));
    }
    measure(tasks, &barrier, &gateway.pid()).await
}

/// `total` requests over `connections` keep-alive HTTP/1.1 connections, one at a time on each.
async fn http_load(gateway: &Process, connections: usize, total: usize) -> Figures {
    let barrier = Arc::new(tokio::sync::Barrier::new(connections + 1));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let stream = tokio::net::TcpStream::connect(&gateway.addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let (barrier, addr, count) = (barrier.clone(), gateway.addr.clone(), total / connections);
        tasks.push(tokio::spawn(async move {
            let mut call = async move || {
                let request = hyper::Request::post("/api/bench/echo")
                    .header("host", &addr)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(PARAMS.as_bytes())))
                    .unwrap();
                let t = Instant::now();
                let response = sender.send_request(request).await.expect("a response");
                assert_eq!(response.status(), 200, "a bench request failed");
                response.into_body().collect().await.expect("a body");
                t.elapsed()
            };
            for _ in 0..50 {
                call().await;
            }
            barrier.wait().await;
            let mut latencies = Vec::with_capacity(count);
            for _ in 0..count {
                latencies.push(call().await);
            }
            latencies
        }));
    }
    measure(tasks, &barrier, &gateway.pid()).await
}

/// `total` requests from the Rust client in this process, `outstanding` at once.
async fn direct(client: &nuropb_tokio::Client, outstanding: usize, total: usize) -> Figures {
    let barrier = Arc::new(tokio::sync::Barrier::new(outstanding + 1));
    let params: Value = serde_json::from_str(PARAMS).unwrap();
    let tasks = (0..outstanding)
        .map(|_| {
            let (client, params, barrier) = (client.clone(), params.clone(), barrier.clone());
            let count = total / outstanding;
            tokio::spawn(async move {
                let call = |params: Value| {
                    let client = client.clone();
                    async move {
                        let t = Instant::now();
                        client
                            .send(Request::new("bench", "echo").params(params))
                            .await
                            .expect("a bench request");
                        t.elapsed()
                    }
                };
                for _ in 0..50 {
                    call(params.clone()).await;
                }
                barrier.wait().await;
                let mut latencies = Vec::with_capacity(count);
                for _ in 0..count {
                    latencies.push(call(params.clone()).await);
                }
                latencies
            })
        })
        .collect();
    measure(tasks, &barrier, "self").await
}

/// Resident KiB per idle WebSocket: `n` sockets opened to a fresh gateway (each has had its
/// hello), held while the gateway's memory is read.
async fn idle(gateway: &Process, n: usize) -> f64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = gateway.rss_kib();
    let mut sockets = Vec::with_capacity(n);
    while sockets.len() < n {
        let batch = (n - sockets.len()).min(200);
        let opened =
            futures_util::future::join_all((0..batch).map(|_| connect(&gateway.addr))).await;
        sockets.extend(opened);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = gateway.rss_kib();
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    (after - before) / n as f64
}

fn report(who: &str, scenario: &str, f: &Figures) {
    println!(
        "{who:<16} {scenario:<34} {:>8.0} req/s | p50 {:.3} ms p99 {:.3} ms | CPU {:.1} µs/request",
        f.rate, f.p50_ms, f.p99_ms, f.cpu_us
    );
}

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("service") => return serve_service(),
        Ok("gateway") => return serve_gateway(),
        _ => {}
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    // Words after `--` pick scenarios by name or prefix: direct-1 direct-64 ws-1 ws-64 ws-one-64
    // http-1 http-64 py-ws-1 py-ws-64 py-ws-one-64 idle-rust idle-py (`-- ws py` runs ws-* and
    // py-*).
    let filters: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    let want = move |name: &str| {
        filters.is_empty()
            || filters.iter().any(|f| {
                name == f
                    || name
                        .strip_prefix(f.as_str())
                        .is_some_and(|rest| rest.starts_with('-'))
            })
    };
    // (one at a time, 64 in flight, Python one at a time, Python 64 in flight, idle sockets)
    let (n1, n64, py1, py64, idle_n) = if full {
        (5_000, 64_000, 3_000, 12_800, 10_000)
    } else {
        (100, 640, 50, 128, 100)
    };
    runtime().block_on(async move {
        let settings = settings();
        nuropb_tokio::create_vhost(&settings).await.expect("RabbitMQ's management API");
        nuropb_tokio::helpers::declare_mesh(nuropb_tokio::TokioRuntime::shared(), &settings)
            .await
            .expect("RabbitMQ declares the mesh");
        let _service = Process::role("service");
        println!("gateway bench: a current-thread tokio runtime in each process; the same echo service (prefetch 64) behind all three");
        let mut seen: HashMap<&str, Figures> = HashMap::new();
        let mut run = async |name: &'static str, who: &str, label: &str, figures: Option<Figures>| {
            if let Some(f) = figures {
                report(who, label, &f);
                seen.insert(name, f);
            }
        };

        let client = nuropb_tokio::connector(settings.clone()).client().await.expect("connect");
        let f = if want("direct-1") { Some(direct(&client, 1, n1).await) } else { None };
        run("direct-1", "direct client", "1 outstanding", f).await;
        let f = if want("direct-64") { Some(direct(&client, 64, n64).await) } else { None };
        run("direct-64", "direct client", "64 outstanding", f).await;
        client.shutdown(Duration::from_secs(2)).await;

        let rust = Process::role("gateway");
        eprintln!("nuropb-gateway pid {}", rust.pid());
        let f = if want("ws-1") { Some(ws_load(&rust, 1, 1, n1).await) } else { None };
        run("ws-1", "nuropb-gateway", "WebSocket, 1 outstanding", f).await;
        let f = if want("ws-64") { Some(ws_load(&rust, 64, 1, n64).await) } else { None };
        run("ws-64", "nuropb-gateway", "WebSocket, 64 sockets x 1", f).await;
        let f = if want("ws-one-64") { Some(ws_load(&rust, 1, 64, n64).await) } else { None };
        run("ws-one-64", "nuropb-gateway", "WebSocket, 1 socket x 64", f).await;
        let f = if want("http-1") { Some(http_load(&rust, 1, n1).await) } else { None };
        run("http-1", "nuropb-gateway", "HTTP, 1 outstanding", f).await;
        let f = if want("http-64") { Some(http_load(&rust, 64, n64).await) } else { None };
        run("http-64", "nuropb-gateway", "HTTP, 64 connections x 1", f).await;
        drop(rust);

        if ["py-ws-1", "py-ws-64", "py-ws-one-64"].iter().any(|n| want(n)) {
            let py = Process::python_gateway();
            let f = if want("py-ws-1") { Some(ws_load(&py, 1, 1, py1).await) } else { None };
            run("py-ws-1", "nuropb-gw 0.1.4", "WebSocket, 1 outstanding", f).await;
            let f = if want("py-ws-64") { Some(ws_load(&py, 64, 1, py64).await) } else { None };
            run("py-ws-64", "nuropb-gw 0.1.4", "WebSocket, 64 sockets x 1", f).await;
            let f = if want("py-ws-one-64") { Some(ws_load(&py, 1, 64, py64).await) } else { None };
            run("py-ws-one-64", "nuropb-gw 0.1.4", "WebSocket, 1 socket x 64", f).await;
        }

        let mut idle_kib = HashMap::new();
        if want("idle-rust") {
            let kib = idle(&Process::role("gateway"), idle_n).await;
            println!("nuropb-gateway   {idle_n} idle WebSockets: {kib:.1} KiB each (resident)");
            idle_kib.insert("rust", kib);
        }
        if want("idle-py") {
            let kib = idle(&Process::python_gateway(), idle_n).await;
            println!("nuropb-gw 0.1.4  {idle_n} idle WebSockets: {kib:.1} KiB each (resident)");
            idle_kib.insert("python", kib);
        }

        println!("goals:");
        let goal = |what: &str, value: f64, target: &str, met: bool| {
            println!("  {what:<62} {value:>8.2} (goal {target}) {}", if met { "met" } else { "NOT met" });
        };
        let ratio = |a: &str, b: &str| Some(seen.get(a)?.rate / seen.get(b)?.rate);
        if let Some(r) = ratio("ws-64", "direct-64") {
            goal("WebSocket 64 sockets / direct client 64 outstanding", r, ">= 0.7", r >= 0.7);
        }
        if let Some(r) = ratio("http-64", "direct-64") {
            goal("HTTP 64 connections / direct client 64 outstanding", r, ">= 0.7", r >= 0.7);
        }
        if let Some(r) = ratio("ws-64", "py-ws-64") {
            goal("WebSocket 64 sockets / nuropb-gw 64 sockets", r, ">= 5", r >= 5.0);
        }
        if let Some(r) = ratio("ws-one-64", "py-ws-one-64") {
            goal("WebSocket 64 on one socket / nuropb-gw 64 on one socket", r, ">= 10", r >= 10.0);
        }
        for (name, label) in [("ws-64", "WebSocket 64 sockets"), ("ws-one-64", "WebSocket 64 on one socket"), ("http-64", "HTTP 64 connections")] {
            if let Some(f) = seen.get(name) {
                goal(&format!("gateway CPU per request, {label}, µs"), f.cpu_us, "<= 25", f.cpu_us <= 25.0);
            }
        }
        if let Some(kib) = idle_kib.get("rust") {
            goal("resident KiB per idle WebSocket", *kib, "<= 12", *kib <= 12.0);
        }
    });
}
