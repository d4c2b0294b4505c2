//! Python NuroPb's `examples/all_in_one.py` on async-std, exactly as the tokio example: a service
//! and a client on one mesh (RabbitMQ at `NUROPB_AMQP_URL`, or an embedded testkit broker).
//!
//! ```sh
//! cargo run -p nuropb-async-std --example async_std_all_in_one
//! ```

use nuropb_async_std::AsyncStdRuntime;
use nuropb_async_std::examples::{ExampleMesh, all_in_one, init_tracing};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    async_std::task::block_on(async {
        tracing::info!("All in one example starting");
        let mesh = ExampleMesh::start(AsyncStdRuntime::shared()).await?;
        let (claims, method) = all_in_one(&mesh).await?;
        println!("{claims}");
        println!("{method}");
        tracing::info!("All in one example done");
        Ok(())
    })
}
