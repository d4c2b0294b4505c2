//! The methods of Python NuroPb's `nuropb.testing.stubs.ServiceExample` on async-std, exactly as
//! the tokio example: served under `--name` (default `test_service`).
//!
//! ```sh
//! cargo run -p nuropb-async-std --example async_std_service_example -- --name test_service --event-binding 'test-event'
//! ```
//! Without `NUROPB_AMQP_URL` it runs on an embedded testkit broker and prints its URL.

use nuropb_async_std::AsyncStdRuntime;
use nuropb_async_std::examples::{ServiceExampleArgs, init_tracing, serve_service_example};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let args = <ServiceExampleArgs as clap::Parser>::parse();
    let (stop_tx, stop_rx) = async_std::channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stop_tx.try_send(());
    })?;
    let stop = async move {
        let _ = stop_rx.recv().await;
    };
    async_std::task::block_on(serve_service_example(AsyncStdRuntime::shared(), args, stop))?;
    Ok(())
}
