//! The `nuropb` command line against the machine's RabbitMQ and a Rust `service_example`: results
//! on stdout, error dicts on stderr, the exit status of each failure, one clear line for each
//! mistake.

// The broker helpers the tokio adapter's integration tests use.
#[path = "../../nuropb-tokio/tests/support/mod.rs"]
mod support;

use nuropb_tokio::TokioRuntime;
use nuropb_tokio::testing::service_example;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn nuropb(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nuropb"))
        .env("NUROPB_AMQP_URL", url)
        .args(args)
        .output()
        .expect("run nuropb")
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON on stdout ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A failure is one line on stderr, without a backtrace or log noise.
fn one_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line on stderr: {stderr:?}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    stderr.trim_end().to_owned()
}

async fn run(url: String, args: Vec<&'static str>) -> Output {
    tokio::task::spawn_blocking(move || nuropb(&url, &args))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_calls_commands_publishes_listens_and_describes() {
    let settings = support::mesh("cli").await;
    let url = support::url(&settings);
    let served = nuropb_tokio::connector(settings.clone())
        .serve(service_example("test_service", TokioRuntime::shared()).prefetch(4))
        .await
        .unwrap();

    let out = run(
        url.clone(),
        vec![
            "call",
            "test_service",
            "test_method",
            r#"{"a": 1}"#,
            "--trace-id",
            "t-cli",
        ],
    )
    .await;
    assert!(out.status.success());
    assert_eq!(
        stdout_json(&out),
        json!("response from test_service.test_method")
    );

    let out = run(
        url.clone(),
        vec![
            "call",
            "test_service",
            "test_requires_encryption",
            "--encrypt",
            "--context",
            r#"{"Authorization": "Bearer x"}"#,
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout_json(&out),
        json!("Result that's to be encrypted in transit")
    );

    // A remote error: the error dict on stderr, status 1.
    let out = run(url.clone(), vec!["call", "test_service", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    let dict: Value = serde_json::from_str(&one_line(&out)).unwrap();
    assert_eq!(
        dict,
        json!({"error": "NuropbHandlingError", "description": "Unknown method nope"})
    );

    // Not delivered: 3. Timeout: 4.
    let out = run(url.clone(), vec!["call", "nobody", "x"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert!(one_line(&out).contains("not available"));
    let out = run(
        url.clone(),
        vec![
            "call",
            "test_service",
            "do_async_task",
            r#"{"sleep": 5}"#,
            "--timeout",
            "0.3",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(4));
    one_line(&out);

    // Command and publish print the correlation id.
    let out = run(
        url.clone(),
        vec!["command", "test_service", "test_method", "{}"],
    )
    .await;
    assert!(out.status.success());
    assert_eq!(
        stdout_json(&out)["correlation_id"].as_str().map(str::len),
        Some(32)
    );

    // listen says when its queue is bound, prints events as JSON lines, and stops after --count.
    let mut listen = Command::new(env!("CARGO_BIN_EXE_nuropb"))
        .env("NUROPB_AMQP_URL", &url)
        .args(["listen", "cli.*", "--count", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nuropb listen");
    let stderr = listen.stderr.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stderr).read_line(&mut line).map(|_| line)
    });
    let ready = tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .expect("listen is ready in time")
        .unwrap()
        .unwrap();
    assert_eq!(ready.trim_end(), "listening on cli.*");
    let listener = tokio::task::spawn_blocking(move || listen.wait_with_output());
    for (topic, n) in [("cli.one", "1"), ("other.x", "0"), ("cli.two", "2")] {
        let event = format!(r#"{{"n": {n}}}"#);
        let out = tokio::task::spawn_blocking({
            let url = url.clone();
            move || {
                nuropb(
                    &url,
                    &[
                        "publish",
                        topic,
                        &event,
                        "--context",
                        r#"{"c": 1}"#,
                        "--trace-id",
                        "t-ev",
                    ],
                )
            }
        })
        .await
        .unwrap();
        assert!(out.status.success());
    }
    let out = tokio::time::timeout(Duration::from_secs(30), listener)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            json!({"topic": "cli.one", "event": {"n": 1}, "context": {"c": 1}, "trace_id": "t-ev"}),
            json!({"topic": "cli.two", "event": {"n": 2}, "context": {"c": 1}, "trace_id": "t-ev"}),
        ]
    );

    let out = run(url.clone(), vec!["describe", "test_service"]).await;
    assert!(out.status.success());
    let description = stdout_json(&out);
    assert_eq!(description["service_name"], json!("test_service"));
    assert_eq!(description["encrypted_methods"], json!(true));

    // mesh setup is idempotent.
    for _ in 0..2 {
        let out = run(url.clone(), vec!["mesh", "setup"]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    served.shutdown(Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
}

#[test]
fn mistakes_get_one_clear_line_each() {
    let url = "amqp://guest:guest@127.0.0.1:5672/nuropb-cli-mistakes";
    let out = nuropb(url, &["call", "svc", "m", "{not json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out).starts_with("error: PARAMS_JSON is not valid JSON"));

    let out = nuropb(url, &["call", "svc", "m", "[1, 2]"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(one_line(&out), "error: PARAMS_JSON must be a JSON object");

    let out = nuropb(url, &["call", "svc", "m", "--context", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out).starts_with("error: --context is not valid JSON"));

    let out = nuropb(url, &["call", "svc", "m", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("error: unexpected argument '--bogus'")
    );

    let out = nuropb("amqp://guest:guest@127.0.0.1:1/x", &["call", "svc", "m"]);
    assert_eq!(out.status.code(), Some(5));
    assert!(one_line(&out).starts_with("error: cannot connect to 127.0.0.1:1"));

    let out = nuropb("http://nope", &["call", "svc", "m"]);
    assert_eq!(out.status.code(), Some(2));
    one_line(&out);

    let help = nuropb(url, &["--help"]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for verb in ["call", "command", "publish", "listen", "describe", "mesh"] {
        assert!(help.contains(verb), "--help lists {verb}");
    }
}
