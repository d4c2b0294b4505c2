//! `nuropb gateway` against the machine's RabbitMQ and a Rust `service_example`: it refuses to
//! start without a way to verify tokens (unless anonymous is allowed), and once started it
//! verifies JWTs — signature, `exp`, `nbf` — before it calls the mesh.

// The broker helpers the tokio adapter's integration tests use.
#[path = "../../nuropb-tokio/tests/support/mod.rs"]
mod support;

use nuropb_tokio::TokioRuntime;
use nuropb_tokio::testing::service_example;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &str = "a secret for the command line's test, long enough";

fn nuropb(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nuropb"))
        .env(
            "NUROPB_AMQP_URL",
            "amqp://guest:guest@127.0.0.1:5672/nuropb-never-used",
        )
        .args(args)
        .output()
        .expect("run nuropb")
}

#[test]
fn the_gateway_refuses_to_start_without_a_way_to_verify_tokens() {
    let out = nuropb(&["gateway", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--allow-anonymous") && stderr.trim_end().lines().count() == 1,
        "{stderr}"
    );
    let out = nuropb(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--jwt-secret-file",
        "a",
        "--jwt-public-key",
        "b",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = nuropb(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--jwt-secret-file",
        "/no/such/file",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read --jwt-secret-file"));
    let out = nuropb(&["gateway", "--listen", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
}

fn jwt(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// POSTs `{}` to `path` with `token`; the status and the body.
fn post(addr: &str, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_verifies_jwts_before_it_calls_the_mesh() {
    let settings = support::mesh("cli-gateway").await;
    let url = support::url(&settings);
    let served = nuropb_tokio::connector(settings.clone())
        .serve(service_example("test_service", TokioRuntime::shared()))
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("nuropb-gw-{}", nuropb_tokio::random_hex()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nuropb"))
        .env("NUROPB_AMQP_URL", &url)
        .args([
            "gateway",
            "--listen",
            "127.0.0.1:0",
            "--service",
            "test_service",
            "--jwt-secret-file",
        ])
        .arg(&secret)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let listening: Value = serde_json::from_str(&line).expect("{\"listening\": ADDR}");
    let addr = listening["listening"].as_str().unwrap().to_owned();

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let checks = tokio::task::spawn_blocking(move || {
        let path = "/api/test_service/test_method";
        let good = jwt(json!({"sub": "u1", "exp": now + 600}));
        let expired = jwt(json!({"sub": "u1", "exp": now - 5}));
        let early = jwt(json!({"sub": "u1", "exp": now + 600, "nbf": now + 300}));
        let no_exp = jwt(json!({"sub": "u1"}));
        [
            post(&addr, path, Some(&good)),
            post(&addr, path, Some(&expired)),
            post(&addr, path, Some(&early)),
            post(&addr, path, Some(&no_exp)),
            post(&addr, path, Some("forged.token.here")),
            post(&addr, path, None),
        ]
    })
    .await
    .unwrap();
    assert_eq!(
        checks[0],
        (200, json!("response from test_service.test_method"))
    );
    for (status, body) in &checks[1..] {
        assert_eq!(
            (*status, body["error"].as_str()),
            (401, Some("NuropbAuthenticationError")),
            "{body}"
        );
    }
    assert!(
        checks[1].1["description"]
            .as_str()
            .unwrap()
            .contains("Expired")
    );
    assert!(
        checks[2].1["description"]
            .as_str()
            .unwrap()
            .contains("Immature")
    );

    // SIGTERM stops it cleanly.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success());
    served.shutdown(std::time::Duration::from_secs(1)).await;
    support::drop_mesh(&settings).await;
    let _ = std::fs::remove_dir_all(dir);
}
