//! The tokio implementation of [`Runtime`]: tasks, timers, TCP and tokio-rustls.

use nuropb_api::{BoxFuture, Runtime, Stream, Target};
use std::io;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::compat::TokioAsyncReadCompatExt;

/// Runs endpoints on the tokio runtime the caller is in.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioRuntime;

impl TokioRuntime {
    /// The runtime, shared.
    pub fn shared() -> Arc<dyn Runtime> {
        Arc::new(TokioRuntime)
    }
}

impl Runtime for TokioRuntime {
    fn spawn(&self, future: BoxFuture<()>) {
        tokio::spawn(future);
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(tokio::time::sleep_until(deadline.into()))
    }

    fn connect(&self, target: Target) -> BoxFuture<io::Result<Box<dyn Stream>>> {
        Box::pin(async move {
            let tcp = TcpStream::connect((target.host.as_str(), target.port)).await?;
            tcp.set_nodelay(true)?;
            match target.tls {
                None => Ok(Box::new(tcp.compat()) as Box<dyn Stream>),
                Some(config) => {
                    let name = nuropb_api::tls::server_name(&target.host)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                    let tls = TlsConnector::from(config).connect(name, tcp).await?;
                    Ok(Box::new(tls.compat()) as Box<dyn Stream>)
                }
            }
        })
    }
}
