//! What the integration tests share: the broker, a fresh mesh per test, the Python interpreter.
#![allow(dead_code)]

use nuropb_tokio::{
    CallContext, Client, ConnectionSettings, ErrorKind, Method, NuropbError, Service,
};
use std::time::Duration;

/// The machine's RabbitMQ (`NUROPB_TEST_AMQP_URL`, default 127.0.0.1:5672), with `vhost`.
pub fn settings(vhost: &str) -> ConnectionSettings {
    let base = std::env::var("NUROPB_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    ConnectionSettings::from_url(&base)
        .expect("NUROPB_TEST_AMQP_URL must be an AMQP URL")
        .with_vhost(vhost)
}

/// A fresh vhost with the mesh configured. A broker that does not answer fails the test.
pub async fn mesh(name: &str) -> ConnectionSettings {
    let settings = settings(&format!(
        "nuropb-test-{name}-{}",
        &nuropb_tokio::random_hex()[..12]
    ));
    nuropb_tokio::create_vhost(&settings)
        .await
        .expect("RabbitMQ's management API must answer (scripts/test.sh enables it)");
    let client = nuropb_tokio::connector(settings.clone())
        .client()
        .await
        .expect("RabbitMQ must answer on NUROPB_TEST_AMQP_URL");
    client.configure_mesh().await.expect("mesh configured");
    client.shutdown(Duration::from_secs(1)).await;
    settings
}

/// Serves `service` on `settings`: its handle.
pub async fn serve(settings: &ConnectionSettings, service: Service) -> Client {
    nuropb_tokio::connector(settings.clone())
        .serve(service)
        .await
        .expect("the service connects")
}

/// Serves `service` on `settings` and connects a client there: (the service's handle, the client).
pub async fn serve_and_connect(
    settings: &ConnectionSettings,
    service: Service,
) -> (Client, Client) {
    let served = serve(settings, service).await;
    let client = nuropb_tokio::connector(settings.clone())
        .client()
        .await
        .expect("the client connects");
    (served, client)
}

/// `nap`: sleeps `{"ms": N}` milliseconds, then answers N.
pub fn nap() -> Method {
    Method::new(
        "nap",
        |_ctx: CallContext, p: serde_json::Value| async move {
            let ms = p["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, NuropbError>(ms)
        },
    )
}

/// Waits for every call, each within `limit`: each must resolve, with its result or with a
/// transport error or timeout (it was lost with a connection). Returns how many were answered.
pub async fn all_resolve(
    calls: Vec<tokio::task::JoinHandle<Result<serde_json::Value, NuropbError>>>,
    limit: Duration,
) -> usize {
    let mut answered = 0;
    for call in calls {
        match tokio::time::timeout(limit, call).await {
            Ok(Ok(Ok(_))) => answered += 1,
            Ok(Ok(Err(e))) => assert!(
                matches!(e.kind, ErrorKind::Transport | ErrorKind::Timeout),
                "unexpected error {e}"
            ),
            other => panic!("a call did not resolve: {other:?}"),
        }
    }
    answered
}

/// Removes a test vhost.
pub async fn drop_mesh(settings: &ConnectionSettings) {
    let _ = nuropb_tokio::delete_vhost(settings).await;
}

/// The AMQP URL of `settings`, password included, for Python.
pub fn url(settings: &ConnectionSettings) -> String {
    let vhost = if settings.vhost == "/" {
        "%2f".to_owned()
    } else {
        settings.vhost.clone()
    };
    format!(
        "amqp://{}:{}@{}:{}/{}",
        settings.username,
        settings.password,
        settings.host,
        settings.port(),
        vhost
    )
}

/// The example binary `cargo test` built beside this test: the newest of `examples/NAME` and, as
/// `cargo test` leaves it, `examples/NAME-<hash>`.
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples");
    let prefix = format!("{name}-");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|entry| {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            file == name
                || file.strip_prefix(&prefix).is_some_and(|hash| {
                    hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())
                })
        })
        .max_by_key(|entry| entry.metadata().and_then(|m| m.modified()).ok())
        .map(|entry| entry.path())
        .unwrap_or_else(|| panic!("the example {name} is not built in {}", dir.display()))
}

pub mod broker;
pub mod proxy;
pub mod raw;
