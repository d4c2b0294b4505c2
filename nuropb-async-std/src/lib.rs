//! NuroPb on async-std and smol.
//!
//! The same API as `nuropb-tokio` — it is `nuropb-api`'s, re-exported — on the `async-io`
//! foundation that async-std and smol share: [`AsyncStdRuntime`] spawns on async-std's executor,
//! [`SmolRuntime`] on smol's; both use `futures-io` sockets and futures-rustls for TLS.
//!
//! async-std is discontinued upstream (RUSTSEC-2025-0052) in favour of smol; code written against
//! this crate runs under either.
//!
//! ```no_run
//! use nuropb_async_std::{CallContext, Method, NuropbError, Service};
//!
//! # fn main() -> Result<(), NuropbError> {
//! async_std::task::block_on(async {
//!     let url = "amqp://guest:guest@127.0.0.1:5672/nuropb-example";
//!     let service = Service::new("greeter").method(Method::new(
//!         "hello",
//!         |_ctx: CallContext, p: serde_json::Value| async move { Ok::<_, NuropbError>(format!("hello {}", p["name"])) },
//!     ));
//!     let served = nuropb_async_std::create_service(url, service).await?;
//!     let client = nuropb_async_std::create_client(url).await?;
//!     let reply = client.request("greeter", "hello", serde_json::json!({"name": "world"})).await?;
//!     served.shutdown(std::time::Duration::from_secs(5)).await;
//!     Ok(())
//! })
//! # }
//! ```
#![forbid(unsafe_code)]

mod runtimes;

pub use nuropb_api::*;
pub use runtimes::{AsyncStdRuntime, SmolRuntime};

/// A connector on async-std with `settings`.
pub fn connector(settings: ConnectionSettings) -> Connector {
    Connector::new(AsyncStdRuntime::shared(), settings)
}

/// Connects a client-only participant to the broker at `url` (Python's `create_client`).
pub async fn create_client(url: &str) -> Result<Client, NuropbError> {
    helpers::create_client(AsyncStdRuntime::shared(), url).await
}

/// Serves `service` on the broker at `url` (Python's `create_service`); shut it down with
/// [`Client::shutdown`].
pub async fn create_service(url: &str, service: Service) -> Result<Client, NuropbError> {
    helpers::create_service(AsyncStdRuntime::shared(), url, service).await
}

/// Makes the mesh ready at `url` (Python's `configure_mesh`). Idempotent.
pub async fn configure_mesh(url: &str) -> Result<(), NuropbError> {
    helpers::configure_mesh(AsyncStdRuntime::shared(), url).await
}

pub use helpers::{create_vhost, delete_vhost};
