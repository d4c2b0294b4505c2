//! NuroPb on tokio.
//!
//! NuroPb is a service mesh over RabbitMQ: services expose methods, participants call them,
//! send commands, publish and subscribe to events, and ask services to describe themselves —
//! wire-compatible with the Python library `nuropb` 0.1.8.
//!
//! ```no_run
//! use nuropb_tokio::{CallContext, Method, NuropbError, Service};
//!
//! # async fn run() -> Result<(), NuropbError> {
//! let url = "amqp://guest:guest@127.0.0.1:5672/nuropb-example";
//! nuropb_tokio::configure_mesh(url).await?;
//! let service = Service::new("greeter").method(Method::new(
//!     "hello",
//!     |_ctx: CallContext, p: serde_json::Value| async move { Ok::<_, NuropbError>(format!("hello {}", p["name"])) },
//! ));
//! let served = nuropb_tokio::create_service(url, service).await?;
//! let client = nuropb_tokio::create_client(url).await?;
//! let reply = client.request("greeter", "hello", serde_json::json!({"name": "world"})).await?;
//! served.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod tokio_runtime;

/// The README's code, compiled as a doc-test.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

pub use nuropb_api::*;
pub use tokio_runtime::TokioRuntime;

/// A connector on tokio with `settings`.
pub fn connector(settings: ConnectionSettings) -> Connector {
    Connector::new(TokioRuntime::shared(), settings)
}

/// Connects a client-only participant to the broker at `url` (Python's `create_client`).
pub async fn create_client(url: &str) -> Result<Client, NuropbError> {
    helpers::create_client(TokioRuntime::shared(), url).await
}

/// Serves `service` on the broker at `url` (Python's `create_service`); shut it down with
/// [`Client::shutdown`].
pub async fn create_service(url: &str, service: Service) -> Result<Client, NuropbError> {
    helpers::create_service(TokioRuntime::shared(), url, service).await
}

/// Makes the mesh ready at `url` (Python's `configure_mesh`): creates the vhost through the
/// management API when it is missing, then declares the exchanges and dead-letter queue.
/// Idempotent.
pub async fn configure_mesh(url: &str) -> Result<(), NuropbError> {
    helpers::configure_mesh(TokioRuntime::shared(), url).await
}

pub use helpers::{create_vhost, delete_vhost};

/// An event-only participant (Python's `MeshService`): a service with no methods that calls
/// `callback` for each event on its subscriptions.
pub async fn mesh_service<F, Fut>(
    url: &str,
    name: &str,
    patterns: &[&str],
    callback: F,
) -> Result<Client, NuropbError>
where
    F: Fn(IncomingEvent, CallContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), NuropbError>> + Send + 'static,
{
    helpers::mesh_service(TokioRuntime::shared(), url, name, patterns, callback).await
}
