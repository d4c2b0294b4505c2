//! The async-std and smol implementations of [`Runtime`]: tasks, `async-io` timers, TCP and
//! futures-rustls.

use futures_rustls::TlsConnector;
use nuropb_api::{BoxFuture, Runtime, Stream, Target};
use std::io;
use std::sync::Arc;
use std::time::Instant;

/// Secures `tcp` with TLS when `target` asks for it.
async fn secure<S: Stream>(tcp: S, target: Target) -> io::Result<Box<dyn Stream>> {
    match target.tls {
        None => Ok(Box::new(tcp)),
        Some(config) => {
            let name = nuropb_api::tls::server_name(&target.host)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            Ok(Box::new(
                TlsConnector::from(config).connect(name, tcp).await?,
            ))
        }
    }
}

/// An `async-io` timer, which both executors drive.
fn sleep_until(deadline: Instant) -> BoxFuture<()> {
    Box::pin(async move {
        smol::Timer::at(deadline).await;
    })
}

/// Runs endpoints on async-std's executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct AsyncStdRuntime;

impl AsyncStdRuntime {
    /// The runtime, shared.
    pub fn shared() -> Arc<dyn Runtime> {
        Arc::new(AsyncStdRuntime)
    }
}

impl Runtime for AsyncStdRuntime {
    fn spawn(&self, future: BoxFuture<()>) {
        async_std::task::spawn(future);
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        sleep_until(deadline)
    }

    fn connect(&self, target: Target) -> BoxFuture<io::Result<Box<dyn Stream>>> {
        Box::pin(async move {
            let tcp =
                async_std::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
            tcp.set_nodelay(true)?;
            secure(tcp, target).await
        })
    }
}

/// Runs endpoints on smol's executor.
#[derive(Clone, Copy, Debug, Default)]
pub struct SmolRuntime;

impl SmolRuntime {
    /// The runtime, shared.
    pub fn shared() -> Arc<dyn Runtime> {
        Arc::new(SmolRuntime)
    }
}

impl Runtime for SmolRuntime {
    fn spawn(&self, future: BoxFuture<()>) {
        smol::spawn(future).detach();
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        sleep_until(deadline)
    }

    fn connect(&self, target: Target) -> BoxFuture<io::Result<Box<dyn Stream>>> {
        Box::pin(async move {
            let tcp = smol::net::TcpStream::connect((target.host.as_str(), target.port)).await?;
            tcp.set_nodelay(true)?;
            secure(tcp, target).await
        })
    }
}
