//! The methods of Python NuroPb's `nuropb.testing.stubs.ServiceExample`, with the same results and
//! errors, served under `--name` (default `test_service`).
//!
//! ```sh
//! NUROPB_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/nuropb-example \
//!     cargo run -p nuropb-async-std --example async_std_service_example -- --name test_service --event-binding 'test-event'
//! ```
//! Without `NUROPB_AMQP_URL` it runs on an embedded testkit broker and prints its URL.

use nuropb_async_std::AsyncStdRuntime;
use nuropb_async_std::examples::{ExampleMesh, init_tracing};
use nuropb_async_std::testing::service_example;
use serde_json::json;
use std::time::Duration;

#[derive(clap::Parser)]
#[command(about = "Serves the methods of Python NuroPb's ServiceExample")]
struct Args {
    /// The service name.
    #[arg(long, default_value = "test_service")]
    name: String,
    /// Topic patterns of events to subscribe to (repeatable).
    #[arg(long = "event-binding")]
    event_bindings: Vec<String>,
    /// A fixed instance id (single-instance mode).
    #[arg(long)]
    instance_id: Option<String>,
    /// How many calls to handle at once.
    #[arg(long, default_value_t = 1)]
    prefetch: u16,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    async_std::task::block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let args = <Args as clap::Parser>::parse();
    let mesh = ExampleMesh::start(AsyncStdRuntime::shared()).await?;
    if let Some(broker) = &mesh.embedded {
        println!("embedded broker: {}", broker.amqp_url("nuropb-example"));
    }
    let mut service =
        service_example(&args.name, AsyncStdRuntime::shared()).prefetch(args.prefetch);
    for pattern in &args.event_bindings {
        service = service.subscribe(pattern.clone());
    }
    if let Some(id) = args.instance_id {
        service = service.instance_id(id);
    }
    let service = service.on_event(|event, _ctx| async move {
        // One JSON line per event, for scripts and tests to read.
        println!(
            "{}",
            json!({"topic": event.topic, "event": event.event, "target": event.target,
                   "context": event.context, "trace_id": event.trace_id})
        );
        Ok(())
    });
    let served = mesh.connector().serve(service).await?;
    println!("{} ready on {}", served.name(), mesh.settings);
    let (stop, stopped) = async_std::channel::bounded::<()>(1);
    ctrlc::set_handler(move || {
        let _ = stop.try_send(());
    })?;
    let _ = stopped.recv().await;
    served.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
