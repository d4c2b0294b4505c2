//! What the container tests share: a real etcd, a vhost of the machine's RabbitMQ, container
//! instances as processes (Rust's `service_example`, Python's `ServiceContainer`), and waits that
//! fail with what the instances said.
//!
//! Nothing here skips: without etcd, RabbitMQ or Python the tests fail, saying which is missing.

#![allow(dead_code, unused_imports)]

pub mod etcd;
pub mod instance;

pub use etcd::{Etcd, TestEtcd, shared_etcd};
pub use instance::{Instance, PythonInstance};

use nuropb_api::{ConnectionSettings, management};
use std::time::{Duration, Instant};

/// A unique name for this run: `{prefix}-{8 hex digits}`.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &nuropb_api::random_hex()[..8])
}

/// A vhost of its own on the machine's RabbitMQ (`NUROPB_TEST_AMQP_URL`'s server), not created
/// yet — configuring the mesh is the leader's job — and deleted when dropped.
pub struct TestMesh {
    pub url: String,
    pub settings: ConnectionSettings,
}

impl TestMesh {
    pub fn new(name: &str) -> TestMesh {
        let base = std::env::var("NUROPB_TEST_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
        let (server, _) = base.rsplit_once('/').expect("an AMQP URL with a vhost");
        let url = format!("{server}/{}", unique(name));
        let settings = ConnectionSettings::from_url(&url).expect("a good AMQP URL");
        // RabbitMQ and its management API must answer: a test fails here, it does not skip.
        management::queue_blocking(&settings.clone().with_vhost("/"), "nuropb-probe")
            .unwrap_or_else(|e| panic!("RabbitMQ's management API does not answer: {e}"));
        TestMesh { url, settings }
    }

    /// The service queue's consumers, as RabbitMQ counts them now (`rabbitmqctl list_queues`;
    /// the management API's figures lag by seconds); 0 when the queue or vhost does not exist.
    pub fn consumers(&self, service: &str) -> u64 {
        let queue = nuropb_proto::mesh::names::service_queue(service);
        let output = std::process::Command::new("rabbitmqctl")
            .args([
                "list_queues",
                "-p",
                &self.settings.vhost,
                "name",
                "consumers",
            ])
            .args(["--no-table-headers", "-q"])
            .output()
            .unwrap_or_else(|e| panic!("rabbitmqctl: {e}"));
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|line| {
                let (name, consumers) = line.split_once('\t')?;
                (name == queue).then(|| consumers.trim().parse().ok())?
            })
            .unwrap_or(0)
    }

    /// A client on the mesh.
    pub async fn client(&self) -> nuropb_api::Client {
        nuropb_tokio::create_client(&self.url)
            .await
            .expect("a client connects to the test vhost")
    }
}

impl TestMesh {
    /// Calls `test_method` of the ServiceExample `service`; panics unless it answers as it should.
    pub async fn assert_answers(&self, service: &str) {
        let client = self.client().await;
        let reply = call(&client, service).await.expect("the service answers");
        assert_eq!(
            reply,
            serde_json::json!(format!("response from {service}.test_method"))
        );
        client.shutdown(Duration::from_secs(1)).await;
    }
}

/// Calls `test_method` of the ServiceExample `service` through `client`.
pub async fn call(
    client: &nuropb_api::Client,
    service: &str,
) -> Result<serde_json::Value, nuropb_api::NuropbError> {
    let request = nuropb_api::Request::new(service, "test_method")
        .params(serde_json::json!({"param1": "p", "param2": {"x": 1}}))
        .timeout(Duration::from_secs(10));
    client.send(request).await
}

impl Drop for TestMesh {
    fn drop(&mut self) {
        let _ = management::delete_vhost_blocking(&self.settings);
    }
}

/// Polls `check` every 20 ms until it gives a value or `timeout` passes; then panics with
/// `what` and `context()`.
pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                context()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of the leader key, if any.
pub async fn leader_of(etcd: &str, service: &str) -> Option<String> {
    let mut client = etcd_client::Client::connect([etcd], None)
        .await
        .expect("an etcd client");
    let key = nuropb_container::keys::Keys::new(service).leader();
    let response = client.get(key, None).await.expect("etcd answers");
    response
        .kvs()
        .first()
        .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
}
