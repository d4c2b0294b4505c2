//! Python NuroPb's `examples/server.py`: the ServiceExample methods served as `sandbox` until
//! Ctrl-C. Pair it with the `client` example.

use nuropb_tokio::TokioRuntime;
use nuropb_tokio::testing::service_example;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    nuropb_tokio::examples::init_tracing();
    let mesh =
        nuropb_tokio::examples::ExampleMesh::start(nuropb_tokio::TokioRuntime::shared()).await?;
    if let Some(broker) = &mesh.embedded {
        println!("embedded broker: {}", broker.amqp_url("nuropb-example"));
    }
    let service = service_example("sandbox", TokioRuntime::shared()).prefetch(64);
    let served = mesh.connector().serve(service).await?;
    tracing::info!(service = served.name(), "Server ready; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    served.shutdown(Duration::from_secs(10)).await;
    tracing::info!("Server Done");
    Ok(())
}
