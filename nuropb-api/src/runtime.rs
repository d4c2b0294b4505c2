//! What a runtime adapter provides: tasks, timers and connected sockets.
//!
//! Everything else — the connection driver, clients, services, handlers — is written once, here,
//! against this trait and the `futures-io` stream traits. `nuropb-tokio` and `nuropb-async-std`
//! each implement it in a few dozen lines.

use futures_io::{AsyncRead, AsyncWrite};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A connected byte stream: TCP, or TLS over TCP.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// Where to connect, and how to secure the connection.
#[derive(Clone, Debug)]
pub struct Target {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS client configuration, when the connection is to be secured.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// The runtime an endpoint runs on.
pub trait Runtime: Send + Sync + 'static {
    /// Runs `future` to completion in the background.
    fn spawn(&self, future: BoxFuture<()>);
    /// A future that completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()>;
    /// Connects to `target`: TCP, then the TLS handshake when `target.tls` is set (verifying the
    /// server's certificate against `target.host` unless the configuration says otherwise).
    fn connect(&self, target: Target) -> BoxFuture<io::Result<Box<dyn Stream>>>;
}
