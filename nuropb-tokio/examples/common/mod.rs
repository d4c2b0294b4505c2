//! What the examples share: logging, and the broker to run on.
#![allow(dead_code)]

use nuropb_testkit::BrokerConfig;
use nuropb_testkit::server::{self, ServerHandle};
use nuropb_tokio::{ConnectionSettings, ErrorKind, NuropbError};
use std::time::Duration;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The broker an example runs on, with its mesh ready: RabbitMQ at `NUROPB_AMQP_URL` (the vhost
/// is created through the management API if missing), or else an embedded testkit broker on a
/// free loopback port, so that the example runs with nothing installed.
pub struct Mesh {
    /// How to connect.
    pub settings: ConnectionSettings,
    /// The embedded broker, when there is one; it stops when dropped.
    pub embedded: Option<ServerHandle>,
}

impl Mesh {
    /// Makes the mesh ready on the vhost `nuropb-example` (or the one in `NUROPB_AMQP_URL`).
    pub async fn start() -> Result<Mesh, NuropbError> {
        match std::env::var("NUROPB_AMQP_URL") {
            Ok(url) => {
                nuropb_tokio::configure_mesh(&url).await?;
                tracing::info!(broker = %nuropb_tokio::settings::obfuscate(&url), "on RabbitMQ");
                Ok(Mesh {
                    settings: ConnectionSettings::from_url(&url)?,
                    embedded: None,
                })
            }
            Err(_) => {
                let config = BrokerConfig {
                    declare_mesh_exchanges: true,
                    ..BrokerConfig::default()
                };
                let broker = server::spawn_with("127.0.0.1:0", config).map_err(|e| {
                    NuropbError::new(ErrorKind::Transport, format!("embedded broker: {e}"))
                })?;
                let url = broker.amqp_url("nuropb-example");
                tracing::info!(%url, "NUROPB_AMQP_URL is not set: on the embedded testkit broker");
                let settings = ConnectionSettings::from_url(&url)?;
                let client = nuropb_tokio::connector(settings.clone()).client().await?;
                client.configure_mesh().await?;
                client.shutdown(Duration::from_secs(1)).await;
                Ok(Mesh {
                    settings,
                    embedded: Some(broker),
                })
            }
        }
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        if let Some(broker) = self.embedded.take() {
            broker.shutdown();
        }
    }
}
