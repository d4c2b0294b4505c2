//! A basic service, as Python NuroPb's `examples/server_basic.py`: `basic-example` with
//! `test_method` and `test_async_method`, served until Ctrl-C.

use nuropb_tokio::{CallContext, Method, NuropbError, Service};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    nuropb_tokio::examples::init_tracing();
    let mesh =
        nuropb_tokio::examples::ExampleMesh::start(nuropb_tokio::TokioRuntime::shared()).await?;
    let service = Service::new("basic-example")
        .method(
            Method::new("test_async_method", |_ctx: CallContext, _p: Value| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, NuropbError>("response from test_method")
            })
            .param("params", "Any"),
        )
        .method(
            Method::new("test_method", |_ctx: CallContext, p: Value| async move {
                Ok::<_, NuropbError>(json!({"param1": p["param1"], "param2": p["param2"], "reply": "response from test_method"}))
            })
            .param("param1", "")
            .param("param2", "Dict"),
        );
    let served = mesh.connector().serve(service).await?;
    tracing::info!(service = served.name(), settings = %mesh.settings, "Service ready; Ctrl-C to stop");
    tokio::signal::ctrl_c().await?;
    served.shutdown(Duration::from_secs(10)).await;
    tracing::info!("Service basic-example done");
    Ok(())
}
