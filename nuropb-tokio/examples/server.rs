//! Python NuroPb's `examples/server.py`: the ServiceExample methods served as `sandbox` until
//! Ctrl-C. Pair it with the `client` example.

mod common;

use nuropb_tokio::TokioRuntime;
use nuropb_tokio::testing::service_example;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::init_tracing();
    let mesh = common::Mesh::start().await?;
    if let Some(broker) = &mesh.embedded {
        println!("embedded broker: {}", broker.amqp_url("nuropb-example"));
    }
    let service = service_example("sandbox", TokioRuntime::shared()).prefetch(64);
    let served = nuropb_tokio::connector(mesh.settings.clone())
        .serve(service)
        .await?;
    tracing::info!(service = served.name(), "Server ready; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    served.shutdown(Duration::from_secs(10)).await;
    tracing::info!("Server Done");
    Ok(())
}
