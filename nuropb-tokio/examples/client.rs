//! Python NuroPb's `examples/client.py`: batches of requests, commands and events to the
//! `sandbox` service (run the `server` example first, on the same `NUROPB_AMQP_URL`), with the
//! rate printed at the end. Without `NUROPB_AMQP_URL` it serves `sandbox` itself on an embedded
//! broker, so that it runs alone.

use nuropb_tokio::testing::service_example;
use nuropb_tokio::{Request, TokioRuntime};
use serde_json::json;
use std::time::{Duration, Instant};

const BATCH_SIZE: usize = 500;
const BATCHES: usize = 5;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    nuropb_tokio::examples::init_tracing();
    let mesh =
        nuropb_tokio::examples::ExampleMesh::start(nuropb_tokio::TokioRuntime::shared()).await?;
    let connector = mesh.connector();
    let local = match mesh.embedded {
        Some(_) => Some(
            connector
                .serve(service_example("sandbox", TokioRuntime::shared()).prefetch(64))
                .await?,
        ),
        None => None,
    };
    let api = connector.client().await?;
    let mut total = 0usize;
    let started = Instant::now();
    for batch in 0..BATCHES {
        let batch_start = Instant::now();
        let requests = (0..BATCH_SIZE).map(|_| {
            let api = api.clone();
            tokio::spawn(async move {
                let request = Request::new("sandbox", "test_method")
                    .params(json!({"param1": "value1"}))
                    .context(json!({"context1": "value1"}))
                    .ttl(Duration::from_secs(30 * 60))
                    .trace_id(nuropb_tokio::random_hex());
                api.send(request).await
            })
        });
        let mut ok = 0;
        for request in requests.collect::<Vec<_>>() {
            if request.await? == Ok(json!("response from sandbox.test_method")) {
                ok += 1;
            }
        }
        for _ in 0..BATCH_SIZE {
            api.command(
                Request::new("sandbox", "test_method").params(json!({"param1": "value1"})),
            )?;
        }
        for _ in 0..BATCH_SIZE {
            api.publish_event(
                "test-event",
                json!({"event_key": "event_value"}),
                json!({"context1": "value1"}),
                None,
            )?;
        }
        total += 3 * BATCH_SIZE;
        tracing::info!(batch, ok, elapsed = ?batch_start.elapsed(), "batch completed");
        println!(
            "batch {batch}: {ok}/{BATCH_SIZE} requests answered in {:?}",
            batch_start.elapsed()
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "Client Done: {total} messages in {seconds:.2}s -> {:.0}/s",
        total as f64 / seconds
    );
    api.shutdown(Duration::from_secs(5)).await;
    if let Some(local) = local {
        local.shutdown(Duration::from_secs(5)).await;
    }
    Ok(())
}
