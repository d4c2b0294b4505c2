//! The real Python `nuropb==0.1.8`, unchanged, against `nuropb-broker` embedded on an ephemeral
//! port: mesh configuration over AMQP, examples/all_in_one.py, every call of
//! `nuropb.testing.stubs.ServiceExample`, a command, events, describe, errors and returns.
//!
//! The interpreter is `$NUROPB_PYTHON` when set; otherwise `target/nuropb-venv` is made with
//! `python3 -m venv` and `pip install nuropb==0.1.8`. Without Python this test fails: it never
//! skips.

use amq_protocol::types::AMQPValue;
use nuropb_testkit::broker::BrokerConfig;
use nuropb_testkit::server;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const VHOST: &str = "nuropb-interop";

fn works(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import nuropb, pika"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Python interpreter with nuropb 0.1.8, made if need be.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("NUROPB_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            works(&p),
            "NUROPB_PYTHON={} cannot import nuropb",
            p.display()
        );
        return p;
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory")
        .to_path_buf();
    let venv = target.join("nuropb-venv");
    let python = venv.join("bin").join("python");
    if works(&python) {
        return python;
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 is needed for the interop test (or set NUROPB_PYTHON)");
    assert!(
        status.success(),
        "python3 -m venv {} failed",
        venv.display()
    );
    let status = Command::new(venv.join("bin").join("pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "nuropb==0.1.8",
        ])
        .status()
        .expect("pip in the new venv");
    assert!(status.success(), "pip install nuropb==0.1.8 failed");
    assert!(
        works(&python),
        "nuropb does not import in {}",
        venv.display()
    );
    python
}

/// Runs the script against `port`, killing it after `limit`; returns its stdout.
fn run_script(python: &Path, port: u16, limit: Duration) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/interop_nuropb.py");
    let out_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop_nuropb.stdout");
    let err_path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop_nuropb.stderr");
    let mut child = Command::new(python)
        .arg(&script)
        .arg(port.to_string())
        .arg(VHOST)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("run the interop script");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the Python script did not finish in {limit:?}; stderr:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(
        status.success(),
        "the Python script failed ({status}); stderr:\n{stderr}"
    );
    stdout
}

#[test]
fn python_nuropb_runs_unchanged_against_nuropb_broker() {
    let python = python();
    let server = server::spawn_with("127.0.0.1:0", BrokerConfig::default()).unwrap();
    let stdout = run_script(&python, server.addr.port(), Duration::from_secs(240));
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("RESULTS "))
        .unwrap_or_else(|| panic!("no RESULTS line in:\n{stdout}"));
    let r: Value = serde_json::from_str(line).unwrap();

    assert_eq!(r["configure_nuropb_rmq"], json!(true));
    assert_eq!(
        r["all_in_one.test_requires_user_claims"],
        json!("hello test_user")
    );
    assert_eq!(
        r["all_in_one.test_method"],
        json!({"param1": "value1", "param2": {"param2a": "value2a"}, "reply": "response from test_method"})
    );
    assert_eq!(
        r["test_method"],
        json!("response from test_service.test_method")
    );
    assert_eq!(
        r["do_async_task"],
        json!("response from test_service.test_method")
    );
    assert_eq!(
        r["test_async_method"],
        json!("response from test_service.test_async_method")
    );
    assert_eq!(
        r["test_success_error"],
        json!("response from test_service.test_success_error")
    );
    assert_eq!(
        r["test_requires_user_claims"],
        json!({"sub": "test_user", "user_id": "test_user", "scope": "openid, profile", "roles": "user, admin"})
    );
    assert_eq!(
        r["test_requires_encryption"],
        json!("Result that's to be encrypted in transit")
    );
    assert_eq!(r["describe"]["service_name"], json!("test_service"));
    assert_eq!(r["describe"]["encrypted_methods"], json!(true));
    assert_eq!(r["describe"]["public_key_pem"], json!(true));
    assert!(
        r["describe"]["methods"]
            .as_array()
            .unwrap()
            .contains(&json!("test_call_again_loop"))
    );
    let again = &r["test_call_again_error"];
    assert_eq!(
        again["success"],
        json!("response from test_service.test_call_again_error")
    );
    assert_eq!(again["param1"], json!("value1"));
    assert_eq!(r["test_call_again_loop"]["result"], Value::Null);
    assert_eq!(
        r["test_call_again_loop"]["error"]["error"],
        json!("NuropbCallAgainReject")
    );
    let cmd = &r["command"];
    assert_eq!(
        cmd["calls_after"].as_i64().unwrap(),
        cmd["calls_before"].as_i64().unwrap() + 1
    );
    assert_eq!(
        r["events"],
        json!([
            {"topic": "test-event", "event": {"event_key": "event_value"}, "target": null, "context": {"c": 1}},
            {"topic": "order.created", "event": {"order": 42}, "target": null, "context": {}}
        ])
    );
    assert_eq!(
        r["unknown_method"]["error"]["error"],
        json!("NuropbHandlingError")
    );
    assert_eq!(
        r["unroutable"]["error"]["error"],
        json!("NuropbNotDeliveredError")
    );

    // What the mesh left in the broker, seen from the Rust side.
    server.with_broker(|b| {
        let xs = b.exchanges(VHOST);
        for (name, kind) in [
            ("nuropb-rpc-exchange", "direct"),
            ("nuropb-events-exchange", "topic"),
            ("nuropb-dl-exchange", "fanout"),
        ] {
            let x = xs.iter().find(|x| x.name == name).expect(name);
            assert_eq!((x.kind.as_str(), x.durable), (kind, true), "{name}");
        }
        let sq = b
            .queue(VHOST, "nuropb-test_service-sq")
            .expect("service queue");
        assert!(sq.durable && !sq.auto_delete);
        assert_eq!(
            sq.arguments.inner().get("x-dead-letter-exchange"),
            Some(&AMQPValue::LongString("nuropb-dl-exchange".into()))
        );
        assert_eq!((sq.messages_ready, sq.consumers), (0, 0));
        let bound: Vec<(String, String)> = b
            .bindings(VHOST)
            .into_iter()
            .filter(|x| x.destination == "nuropb-test_service-sq" && !x.source.is_empty())
            .map(|x| (x.source, x.routing_key))
            .collect();
        for want in [
            ("nuropb-rpc-exchange", "test_service"),
            ("nuropb-events-exchange", "test-event"),
            ("nuropb-events-exchange", "order.*"),
        ] {
            assert!(
                bound.contains(&(want.0.to_owned(), want.1.to_owned())),
                "{want:?} in {bound:?}"
            );
        }
        // Response queues are auto-delete: gone with their consumers.
        assert!(b.queues(VHOST).iter().all(|q| !q.name.ends_with("-rq")));
        // The call-again loop and the unknown method were rejected into the dead-letter queue.
        let dead = b.messages(VHOST, "nuropb-dl-queue");
        let reasons: Vec<AMQPValue> = dead
            .iter()
            .filter_map(|m| {
                m.properties
                    .headers
                    .as_ref()?
                    .get("x-first-death-reason")
                    .cloned()
            })
            .collect();
        assert!(
            reasons
                .iter()
                .filter(|r| **r == AMQPValue::LongString("rejected".into()))
                .count()
                >= 2,
            "{reasons:?}"
        );
        assert!(b.connections().is_empty() || b.connections().iter().all(|c| b.is_closed(*c)));
    });
    server.shutdown();
}
