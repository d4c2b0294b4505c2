//! What the examples share: logging, and the broker to run on.

use nuropb_tokio::{ConnectionSettings, NuropbError};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The broker the example runs on: RabbitMQ at `NUROPB_AMQP_URL`, with its vhost and mesh made
/// ready.
pub struct Mesh {
    /// How to connect.
    pub settings: ConnectionSettings,
}

impl Mesh {
    /// Makes the mesh ready.
    pub async fn start() -> Result<Mesh, NuropbError> {
        let url = std::env::var("NUROPB_AMQP_URL")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/nuropb-example".to_owned());
        nuropb_tokio::configure_mesh(&url).await?;
        Ok(Mesh {
            settings: ConnectionSettings::from_url(&url)?,
        })
    }
}
