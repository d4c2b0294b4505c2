//! A service and a client on one mesh, as Python NuroPb's `examples/all_in_one.py`: the service
//! `quick-example` offers `test_method` and `test_requires_user_claims` (behind an authorize
//! hook); the client calls both, then everything shuts down.
//!
//! ```sh
//! cargo run -p nuropb-tokio --example all_in_one          # on an embedded testkit broker
//! NUROPB_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/nuropb-example \
//!     cargo run -p nuropb-tokio --example all_in_one      # on RabbitMQ
//! ```

use nuropb_tokio::TokioRuntime;
use nuropb_tokio::examples::{ExampleMesh, all_in_one, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    tracing::info!("All in one example starting");
    let mesh = ExampleMesh::start(TokioRuntime::shared()).await?;
    let (claims, method) = all_in_one(&mesh).await?;
    println!("{claims}");
    println!("{method}");
    tracing::info!("All in one example done");
    Ok(())
}
