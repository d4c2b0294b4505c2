//! The gateway in front of the all-in-one services — Python's `quick-example` and
//! `ServiceExample` as `test_service` — with its web console at `/`.
//!
//! ```sh
//! cargo run -p nuropb-gateway --example gateway          # on an embedded testkit broker
//! NUROPB_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/nuropb-example \
//!     cargo run -p nuropb-gateway --example gateway      # on RabbitMQ
//! # then open http://127.0.0.1:8080/ (any token, or none: the services check tokens themselves)
//! ```
//!
//! `--listen ADDR` picks another address; it prints `{"listening": ADDR}` once it serves.

use nuropb_gateway::Gateway;
use nuropb_tokio::TokioRuntime;
use nuropb_tokio::examples::{ExampleMesh, init_tracing, quick_example};
use nuropb_tokio::testing::service_example;
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let args: Vec<String> = std::env::args().collect();
    let listen = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
        .map_or("127.0.0.1:8080", String::as_str);
    let mesh = ExampleMesh::start(TokioRuntime::shared()).await?;
    let connector = mesh.connector();
    let quick = connector.serve(quick_example()).await?;
    let example = connector
        .serve(service_example("test_service", TokioRuntime::shared()).prefetch(8))
        .await?;
    // Anonymous, verifying no tokens: what a client sends is passed on, and the services'
    // authorize hooks check it. A real gateway verifies them (see `nuropb gateway`).
    let gateway = Gateway::builder(connector)
        .allow_anonymous(true)
        .service("quick-example")
        .service("test_service")
        .start()
        .await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    println!("{}", serde_json::json!({"listening": addr.to_string()}));
    tracing::info!("the console is at http://{addr}/");
    tokio::select! {
        served = gateway.serve(listener) => served?,
        _ = tokio::signal::ctrl_c() => {}
    }
    gateway.shutdown().await;
    example.shutdown(Duration::from_secs(2)).await;
    quick.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
