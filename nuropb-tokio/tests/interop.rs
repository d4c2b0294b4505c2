//! Interoperability with Python NuroPb 0.1.8, both ways, on the machine's RabbitMQ.
//!
//! A Rust client calls Python's `ServiceExample`; a Python client calls the Rust
//! `service_example`; events and commands go both ways; Python and Rust services share a vhost;
//! Python and Rust clients call the same encrypted Rust method at once.

mod support;

use nuropb_tokio::testing::{interop, service_example};
use nuropb_tokio::{ErrorKind, NuropbError, Request, TokioRuntime};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A Python process whose stdout lines are read on a thread.
struct Python {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Python {
    fn start(script: &str, args: &[&str]) -> Python {
        let mut child = Command::new(interop::python())
            .arg(interop::script(script))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start Python");
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Python { child, lines }
    }

    /// The next stdout line as JSON.
    fn next_json(&self, within: Duration) -> Value {
        let line = self
            .lines
            .recv_timeout(within)
            .expect("the Python process said nothing in time");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON from Python: {line}: {e}"))
    }

    fn finish(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn error_of(result: Result<Value, NuropbError>) -> (ErrorKind, String) {
    let err = result.unwrap_err();
    (err.kind, err.description)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_calls_the_python_service_example() {
    let settings = support::mesh("rs2py").await;
    let url = support::url(&settings);
    let service = Python::start("python_service.py", &[&url, "test_service", "rust.#"]);
    assert_eq!(
        service.next_json(Duration::from_secs(30)),
        json!({"ready": true})
    );
    let client = nuropb_tokio::connector(settings.clone())
        .client()
        .await
        .unwrap();
    let call =
        |method: &str| Request::new("test_service", method).params(json!({"param1": "value1"}));

    assert_eq!(
        client.send(call("test_method")).await.unwrap(),
        json!("response from test_service.test_method")
    );
    assert_eq!(
        client.send(call("do_async_task")).await.unwrap(),
        json!("response from test_service.test_method")
    );
    assert_eq!(
        client
            .send(Request::new("test_service", "do_async_task").params(json!({"sleep": 0.2})))
            .await
            .unwrap(),
        json!("performed task: sleep")
    );
    assert_eq!(
        client.send(call("test_async_method")).await.unwrap(),
        json!("response from test_service.test_async_method")
    );
    assert_eq!(
        client.send(call("test_success_error")).await.unwrap(),
        json!("response from test_service.test_success_error")
    );
    let again = client.send(call("test_call_again_error")).await.unwrap();
    assert_eq!(
        again["success"],
        json!("response from test_service.test_call_again_error")
    );
    assert_eq!(again["param1"], json!("value1"));
    assert!(again["count"].as_u64().unwrap() >= 1);
    let (kind, description) = error_of(client.send(call("test_call_again_loop")).await);
    assert_eq!(kind, ErrorKind::CallAgainReject);
    assert!(
        description.starts_with("Rejecting second call again request"),
        "{description}"
    );
    assert_eq!(
        error_of(client.send(call("no_such_method")).await),
        (ErrorKind::Handling, "Unknown method no_such_method".into())
    );
    let claims = client
        .send(
            call("test_requires_user_claims")
                .context(json!({"Authorization": "Bearer 1234567890"})),
        )
        .await
        .unwrap();
    assert_eq!(claims["user_id"], json!("test_user"));

    let description = client.describe("test_service", true).await.unwrap();
    assert!(description.encrypted_methods);
    assert!(
        description
            .public_key
            .as_deref()
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    assert!(description.requires_encryption("test_requires_encryption"));
    assert!(description.methods.contains_key("test_call_again_loop"));
    let encrypted = client
        .send(
            call("test_requires_encryption")
                .context(json!({"Authorization": "Bearer 1234567890"}))
                .encrypted(),
        )
        .await
        .unwrap();
    assert_eq!(encrypted, json!("Result that's to be encrypted in transit"));

    // A command, then an event the Python service subscribes to.
    client
        .command(Request::new("test_service", "test_method").params(json!({"from": "rust"})))
        .unwrap();
    client
        .publish_event(
            "rust.hello",
            json!({"from": "rust"}),
            json!({"ctx": 1}),
            None,
        )
        .unwrap();
    let event = service.next_json(Duration::from_secs(10));
    assert_eq!(
        event,
        json!({"topic": "rust.hello", "event": {"from": "rust"}, "target": null, "context": {"ctx": 1}})
    );

    client.shutdown(Duration::from_secs(1)).await;
    service.finish();
    support::drop_mesh(&settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_calls_the_rust_service_example() {
    let settings = support::mesh("py2rs").await;
    let url = support::url(&settings);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let service = service_example("test_service", TokioRuntime::shared())
        .subscribe("python.#")
        .prefetch(8)
        .on_event(move |event, _ctx| {
            let _ = events_tx.send(event);
            async { Ok(()) }
        });
    // Python and Rust clients call the same encrypted method at once.
    let (served, rust_client) = support::serve_and_connect(&settings, service).await;
    let rust_calls = tokio::spawn(async move {
        let mut results = Vec::new();
        for i in 0..20 {
            let request = Request::new("test_service", "test_requires_encryption")
                .params(json!({"i": i}))
                .context(json!({"Authorization": "Bearer r"}))
                .encrypted();
            results.push(rust_client.send(request).await);
        }
        rust_client.shutdown(Duration::from_secs(1)).await;
        results
    });
    let out = tokio::task::spawn_blocking(move || {
        interop::run_python_client(&url, "test_service", "python.hello", 20)
    })
    .await
    .unwrap();
    interop::assert_python_client_saw_service_example(&out, 20);
    for rust in rust_calls.await.unwrap() {
        assert_eq!(
            rust.unwrap(),
            json!("Result that's to be encrypted in transit")
        );
    }
    // The Python client's event reached the Rust service.
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (event.topic.as_str(), &event.event),
        ("python.hello", &json!({"from": "python"}))
    );
    assert_eq!(event.context.get("c"), Some(&json!(1)));

    served.shutdown(Duration::from_secs(2)).await;
    support::drop_mesh(&settings).await;
}

/// A Rust service and a Python service on one vhost and mesh: events from a Rust client and from
/// a Python client reach both; commands go from Rust to Python and from Python to Rust.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_and_a_python_service_share_one_mesh() {
    let settings = support::mesh("shared").await;
    let url = support::url(&settings);
    let python_service = Python::start("python_service.py", &[&url, "py_service", "shared.#"]);
    assert_eq!(
        python_service.next_json(Duration::from_secs(30)),
        json!({"ready": true})
    );

    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let commands = seen_tx.clone();
    let rust_service = nuropb_tokio::Service::new("rs_service")
        .method(nuropb_tokio::Method::new(
            "record",
            move |_ctx: nuropb_tokio::CallContext, p: Value| {
                let _ = commands.send(json!({"command": p}));
                async { Ok::<_, NuropbError>("recorded") }
            },
        ))
        .subscribe("shared.#")
        .on_event(move |event, _ctx| {
            let _ = seen_tx.send(json!({"topic": event.topic, "event": event.event}));
            async { Ok(()) }
        });
    let (served, client) = support::serve_and_connect(&settings, rust_service).await;

    // Rust → both services: an event; Rust → Python: a command.
    client
        .publish_event("shared.from.rust", json!({"n": 1}), json!({}), None)
        .unwrap();
    client
        .command(Request::new("py_service", "record").params(json!({"from": "rust"})))
        .unwrap();
    let mut python_saw = vec![
        python_service.next_json(Duration::from_secs(10)),
        python_service.next_json(Duration::from_secs(10)),
    ];
    python_saw.sort_by_key(|v| v.to_string());
    assert_eq!(
        python_saw,
        [
            json!({"command": {"from": "rust"}}),
            json!({"topic": "shared.from.rust", "event": {"n": 1}, "target": null, "context": {}}),
        ]
    );
    let rust_saw = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rust_saw,
        json!({"topic": "shared.from.rust", "event": {"n": 1}})
    );

    // Python → both services: an event; Python → Rust: a command.
    let script = r#"
import asyncio, sys
from nuropb.rmq_api import RMQAPI
async def main():
    api = RMQAPI(amqp_url=sys.argv[1])
    await api.connect()
    api.publish_event(topic="shared.from.python", event={"n": 2}, context={})
    api.command(service="rs_service", method="record", params={"from": "python"}, context={})
    await asyncio.sleep(0.3)
    await api.disconnect()
asyncio.run(main())
"#;
    let url_for_python = url.clone();
    let status = tokio::task::spawn_blocking(move || {
        Command::new(interop::python())
            .args(["-c", script, &url_for_python])
            .status()
    })
    .await
    .unwrap()
    .expect("run Python");
    assert!(status.success());
    assert_eq!(
        python_service.next_json(Duration::from_secs(10)),
        json!({"topic": "shared.from.python", "event": {"n": 2}, "target": null, "context": {}})
    );
    let mut rust_saw = Vec::new();
    for _ in 0..2 {
        rust_saw.push(
            tokio::time::timeout(Duration::from_secs(10), seen.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    rust_saw.sort_by_key(|v| v.to_string());
    assert_eq!(
        rust_saw,
        [
            json!({"command": {"from": "python"}}),
            json!({"topic": "shared.from.python", "event": {"n": 2}})
        ]
    );

    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    python_service.finish();
    support::drop_mesh(&settings).await;
}

/// `{"a": {"a": … 7 }}`, `levels` objects deep (built without recursion).
fn nested(levels: usize) -> Value {
    (0..levels).fold(json!(7), |inner, _| json!({ "a": inner }))
}

/// How deep `nested` went (read without recursion).
fn depth(mut v: &Value) -> usize {
    let mut n = 0;
    while let Some(inner) = v.get("a") {
        n += 1;
        v = inner;
    }
    n
}

/// JSON nested as deep as Python NuroPb itself gets through (960 levels of params between two
/// Python participants; at 970 its service fails with a RecursionError and never answers) goes
/// both ways between Python and Rust. (Rust read at most about 125 levels before.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_nested_as_deep_as_python_handles_go_both_ways() {
    const LEVELS: usize = 960;
    let settings = support::mesh("deep").await;
    let url = support::url(&settings);
    let python_service = Python::start("python_service.py", &[&url, "py_deep"]);
    assert_eq!(
        python_service.next_json(Duration::from_secs(30)),
        json!({"ready": true})
    );
    let echo = nuropb_tokio::Method::new(
        "echo",
        |_ctx: nuropb_tokio::CallContext, p: Value| async move { Ok::<_, NuropbError>(p) },
    );
    let (served, client) = support::serve_and_connect(
        &settings,
        nuropb_tokio::Service::new("rs_deep").method(echo),
    )
    .await;
    // Rust → Python: deep params in, deep result back.
    let result = client
        .send(Request::new("py_deep", "echo").params(json!({ "deep": nested(LEVELS) })))
        .await
        .expect("the Python service answers");
    assert_eq!(depth(&result["deep"]), LEVELS);
    // Python → Rust.
    let levels = LEVELS.to_string();
    let out = tokio::task::spawn_blocking(move || {
        interop::run_script("python_deep.py", &[&url, "rs_deep", "echo", &levels])
    })
    .await
    .unwrap();
    assert_eq!(out, json!({ "depth": LEVELS }));
    python_service.finish();
    client.shutdown(Duration::from_secs(1)).await;
    served.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}
