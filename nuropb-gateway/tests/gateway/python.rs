//! Python NuroPb 0.1.8's `ServiceExample` behind the gateway: its methods over the WebSocket
//! and HTTP, its authorize hook fed the token the gateway passes on (which nuropb-gw's
//! `Authorisation` key never reached), a command and an event delivered to it.

use crate::support::{Fixture, jwt, rabbitmq};
use nuropb_tokio::testing::interop::{python, script};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The Python service, and the JSON lines it prints.
struct PythonService {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl PythonService {
    fn start(url: &str, name: &str, binding: &str) -> PythonService {
        let mut child = Command::new(python())
            .arg(script("python_service.py"))
            .args([url, name, binding])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("Python runs python_service.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(value);
                }
            }
        });
        let service = PythonService { child, lines };
        assert_eq!(
            service.line(),
            json!({"ready": true}),
            "the Python service did not start"
        );
        service
    }

    fn line(&self) -> Value {
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .expect("a line from the Python service")
    }
}

impl Drop for PythonService {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_service_behind_the_gateway() {
    let fx = Fixture::start("python", |b| b.service("py_service")).await;
    let url = rabbitmq::url(&fx.settings);
    let py = tokio::task::spawn_blocking(move || PythonService::start(&url, "py_service", "py.#"))
        .await
        .unwrap();
    let mut ws = fx.ws_as("lena").await;
    let reply = ws
        .ask(json!({"type": "request", "id": 1, "payload": {"service": "py_service", "method": "test_method", "params": {"param1": "value1"}, "trace_id": "py-1"}}))
        .await;
    assert_eq!(reply["payload"]["error"], Value::Null, "{reply}");
    assert_eq!(reply["payload"]["trace_id"], "py-1");
    assert!(
        reply["payload"]["result"]
            .as_str()
            .unwrap()
            .contains("test_method"),
        "{reply}"
    );
    // Python's authorize_func sees `Authorization` and returns its claims.
    let reply = ws
        .ask(json!({"type": "request", "id": 2, "payload": {"service": "py_service", "method": "test_requires_user_claims", "params": {}}}))
        .await;
    assert_eq!(
        reply["payload"]["result"]["user_id"], "test_user",
        "{reply}"
    );
    // describe over HTTP, and the OpenAPI document names its methods.
    let auth = format!("Bearer {}", jwt("lena", 600));
    let reply = fx
        .http("GET", "/api/py_service", &[("Authorization", &auth)], None)
        .await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.body["methods"]["test_method"].is_object(),
        "{:?}",
        reply.body
    );
    let doc = fx.http("GET", "/openapi.json", &[], None).await.body;
    assert!(doc["paths"]["/api/py_service/test_method"]["post"].is_object());
    // A command over HTTP reaches it, with the params as sent.
    let reply = fx
        .http(
            "POST",
            "/api/py_service/record/command",
            &[("Authorization", &auth)],
            Some(json!({"k": "v"})),
        )
        .await;
    assert_eq!(reply.status, 202, "{reply:?}");
    // An event published through the gateway reaches its binding, without the token.
    let reply = ws
        .ask(json!({"type": "publish", "id": 3, "payload": {"topic": "py.hello", "event": {"e": 1}}}))
        .await;
    assert_eq!(reply["type"], "accepted");
    let (command, event) = tokio::task::spawn_blocking(move || {
        let mut seen = [py.line(), py.line()];
        seen.sort_by_key(|v| v.get("topic").is_some());
        (seen[0].clone(), seen[1].clone())
    })
    .await
    .unwrap();
    assert_eq!(command, json!({"command": {"k": "v"}}));
    assert_eq!(event["topic"], "py.hello");
    assert_eq!(event["event"], json!({"e": 1}));
    assert_eq!(event["context"]["user_id"], "lena");
    fx.stop().await;
}
