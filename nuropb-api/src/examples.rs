//! What the adapters' examples share, so that the tokio and async-std examples behave exactly
//! alike: the broker to run on, and the services and scenarios of Python NuroPb's examples.

use crate::runtime::Runtime;
use crate::service::{Method, Service};
use crate::settings::ConnectionSettings;
use crate::{CallContext, Connector, Request, helpers};
use nuropb_proto::{ErrorKind, NuropbError};
use nuropb_testkit::BrokerConfig;
use nuropb_testkit::server::{self, ServerHandle};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

pub use crate::testing::stubs::claims_from_token;

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The broker an example runs on, with its mesh ready: RabbitMQ at `NUROPB_AMQP_URL` (the vhost
/// is created through the management API if missing), or else an embedded testkit broker on a
/// free loopback port, so that the example runs with nothing installed.
pub struct ExampleMesh {
    /// How to connect.
    pub settings: ConnectionSettings,
    /// The embedded broker, when there is one; it stops when this is dropped.
    pub embedded: Option<ServerHandle>,
    runtime: Arc<dyn Runtime>,
}

impl ExampleMesh {
    /// Makes the mesh ready on `runtime`, on the vhost of `NUROPB_AMQP_URL` or `nuropb-example`.
    pub async fn start(runtime: Arc<dyn Runtime>) -> Result<ExampleMesh, NuropbError> {
        let mesh = ExampleMesh::unconfigured(runtime.clone())?;
        if mesh.embedded.is_none() {
            helpers::create_vhost(&mesh.settings).await?;
        }
        helpers::declare_mesh(runtime, &mesh.settings).await?;
        Ok(mesh)
    }

    /// The broker an example runs on, as [`ExampleMesh::start`] picks it, without configuring
    /// the mesh: for a service container, whose leader does that.
    pub fn unconfigured(runtime: Arc<dyn Runtime>) -> Result<ExampleMesh, NuropbError> {
        match std::env::var("NUROPB_AMQP_URL") {
            Ok(url) => {
                tracing::info!(broker = %crate::settings::obfuscate(&url), "on RabbitMQ");
                Ok(ExampleMesh {
                    settings: ConnectionSettings::from_url(&url)?,
                    embedded: None,
                    runtime,
                })
            }
            Err(_) => {
                let config = BrokerConfig {
                    declare_mesh_exchanges: true,
                    ..BrokerConfig::default()
                };
                let broker = server::spawn_with("127.0.0.1:0", config).map_err(|e| {
                    NuropbError::new(ErrorKind::Transport, format!("embedded broker: {e}"))
                })?;
                let url = broker.amqp_url("nuropb-example");
                tracing::info!(%url, "NUROPB_AMQP_URL is not set: on the embedded testkit broker");
                Ok(ExampleMesh {
                    settings: ConnectionSettings::from_url(&url)?,
                    embedded: Some(broker),
                    runtime,
                })
            }
        }
    }

    /// A connector to the mesh.
    pub fn connector(&self) -> Connector {
        Connector::new(self.runtime.clone(), self.settings.clone())
    }
}

#[derive(Deserialize)]
struct TestMethod {
    param1: Value,
    param2: Value,
}

/// The service of Python's `examples/all_in_one.py`: `quick-example` with `test_method` and the
/// authorized `test_requires_user_claims`.
pub fn quick_example() -> Service {
    Service::new("quick-example")
        .method(
            Method::new("test_requires_user_claims", |ctx: CallContext, _p: Value| async move {
                let user = ctx.claims().and_then(|c| c["user_id"].as_str()).unwrap_or("nobody").to_owned();
                Ok::<_, NuropbError>(format!("hello {user}"))
            })
            .param("kwargs", "Any")
            .authorize(claims_from_token),
        )
        .method(
            Method::new("test_method", |_ctx: CallContext, p: TestMethod| async move {
                Ok::<_, NuropbError>(json!({"param1": p.param1, "param2": p.param2, "reply": "response from test_method"}))
            })
            .param("param1", "")
            .param("param2", "Dict"),
        )
}

/// Python's `examples/all_in_one.py`: serve `quick-example`, call both its methods from a client,
/// shut down. Returns the two responses.
pub async fn all_in_one(mesh: &ExampleMesh) -> Result<(Value, Value), NuropbError> {
    let connector = mesh.connector();
    let service = connector.serve(quick_example()).await?;
    tracing::info!("Service Ready");
    let client = connector.client().await?;
    tracing::info!("Client connected");
    let claims = client
        .send(
            Request::new("quick-example", "test_requires_user_claims")
                .context(json!({"Authorization": "Bearer 1234567890"})),
        )
        .await?;
    tracing::info!(response = %claims, "Response");
    let method = client
        .request(
            "quick-example",
            "test_method",
            json!({"param1": "value1", "param2": {"param2a": "value2a"}}),
        )
        .await?;
    tracing::info!(response = %method, "Response");
    client.shutdown(Duration::from_secs(5)).await;
    service.shutdown(Duration::from_secs(5)).await;
    Ok((claims, method))
}

/// The command line of the `service_example` examples.
#[derive(Clone, Debug, clap::Parser)]
#[command(about = "Serves the methods of Python NuroPb's ServiceExample")]
pub struct ServiceExampleArgs {
    /// The service name.
    #[arg(long, default_value = "test_service")]
    pub name: String,
    /// Topic patterns of events to subscribe to (repeatable).
    #[arg(long = "event-binding")]
    pub event_bindings: Vec<String>,
    /// A fixed instance id (single-instance mode).
    #[arg(long)]
    pub instance_id: Option<String>,
    /// How many calls to handle at once.
    #[arg(long, default_value_t = 1)]
    pub prefetch: u16,
}

/// Python's ServiceExample methods as `args` say (name, event bindings, instance id,
/// prefetch), printing each event it receives as one JSON line: the service of the
/// `service_example` examples.
pub fn service_example_service(runtime: Arc<dyn Runtime>, args: &ServiceExampleArgs) -> Service {
    let mut service = crate::testing::service_example(&args.name, runtime).prefetch(args.prefetch);
    for pattern in &args.event_bindings {
        service = service.subscribe(pattern.clone());
    }
    if let Some(id) = &args.instance_id {
        service = service.instance_id(id.clone());
    }
    service.on_event(|event, _ctx| async move {
        // One JSON line per event, for scripts and tests to read.
        println!(
            "{}",
            json!({"topic": event.topic, "event": event.event, "target": event.target,
                   "context": event.context, "trace_id": event.trace_id})
        );
        Ok(())
    })
}

/// The `service_example` examples: serves Python's ServiceExample methods as `args` say on
/// `runtime`, printing each event it receives as one JSON line, until `stop` completes; then
/// shuts down gracefully.
pub async fn serve_service_example(
    runtime: Arc<dyn Runtime>,
    args: ServiceExampleArgs,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), NuropbError> {
    let mesh = ExampleMesh::start(runtime.clone()).await?;
    if let Some(broker) = &mesh.embedded {
        println!("embedded broker: {}", broker.amqp_url("nuropb-example"));
    }
    let service = service_example_service(runtime, &args);
    let served = mesh.connector().serve(service).await?;
    println!("{} ready on {}", served.name(), mesh.settings);
    stop.await;
    served.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
