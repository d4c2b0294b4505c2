//! The methods of Python NuroPb's `nuropb.testing.stubs.ServiceExample`, with the same results and
//! errors, served under `--name` (default `test_service`).
//!
//! ```sh
//! NUROPB_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/nuropb-example \
//!     cargo run -p nuropb-tokio --example service_example -- --name test_service --event-binding 'test-event'
//! ```
//! Without `NUROPB_AMQP_URL` it runs on an embedded testkit broker and prints its URL.

use nuropb_tokio::TokioRuntime;
use nuropb_tokio::examples::{ServiceExampleArgs, init_tracing, serve_service_example};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let args = <ServiceExampleArgs as clap::Parser>::parse();
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    serve_service_example(TokioRuntime::shared(), args, stop).await?;
    Ok(())
}
