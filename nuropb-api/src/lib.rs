//! NuroPb's public API, independent of the async runtime.
//!
//! Connect a client, serve a service, call methods, publish events — on any runtime that
//! implements [`Runtime`]. Use it through `nuropb-tokio` or `nuropb-async-std`, which provide the
//! runtime and re-export everything here.
//!
//! - [`Connector`]: settings and options; [`Connector::client`] and [`Connector::serve`] start an
//!   endpoint and return its [`Client`] handle once it is ready.
//! - [`Service`], [`Method`], [`CallContext`]: declaring a service with typed handlers.
//! - [`ConnectionSettings`], [`TlsSettings`]: where and how to connect.
//! - [`management`]: creating a virtual host through RabbitMQ's management API.
#![forbid(unsafe_code)]

mod backlog;
pub mod client;
pub mod context;
mod driver;
#[cfg(feature = "examples")]
pub mod examples;
pub mod helpers;
pub mod management;
pub mod runtime;
pub mod service;
pub mod settings;
mod state;
pub mod testing;
pub mod tls;

pub use backlog::{SendLimits, Unsent};
pub use client::Client;
pub use context::CallContext;
pub use nuropb_proto::mesh::{EventSpec, IncomingEvent, MeshNames, Outcome, Request};
pub use nuropb_proto::{ErrorKind, NuropbError};
pub use runtime::{BoxFuture, Runtime, Stream, Target};
pub use service::{Method, Service, outcome_of};
pub use settings::{ConnectionSettings, TlsSettings};
pub use state::ConnectionState;

use driver::{Driver, Handlers};
use futures_channel::{mpsc, oneshot};
use nuropb_proto::mesh::{Endpoint, EndpointConfig, ServiceConfig};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// 128 random bits from the OS, as 32 hex digits: an instance id like Python's `uuid4().hex`.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    format!("{:032x}", u128::from_le_bytes(bytes))
}

fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// Starts endpoints on a runtime: what to connect to, and how.
///
/// ```no_run
/// # async fn example(runtime: std::sync::Arc<dyn nuropb_api::Runtime>) -> Result<(), nuropb_api::NuropbError> {
/// use nuropb_api::{ConnectionSettings, Connector};
/// let settings = ConnectionSettings::from_url("amqp://guest:guest@127.0.0.1:5672/nuropb")?;
/// let client = Connector::new(runtime, settings).client().await?;
/// let reply = client.request("echo", "echo", serde_json::json!({"x": 1})).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Connector {
    runtime: Arc<dyn Runtime>,
    settings: ConnectionSettings,
    names: MeshNames,
    default_timeout: Duration,
    configure_mesh: bool,
    instance_id: Option<String>,
    send_limits: SendLimits,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("settings", &self.settings)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// Endpoints on `runtime`, connecting with `settings`.
    pub fn new(runtime: Arc<dyn Runtime>, settings: ConnectionSettings) -> Connector {
        Connector {
            runtime,
            settings,
            names: MeshNames::default(),
            default_timeout: Duration::from_secs(60),
            configure_mesh: false,
            instance_id: None,
            send_limits: SendLimits::default(),
        }
    }

    /// The connection settings.
    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// The names of the mesh's exchanges and dead-letter queue.
    pub fn mesh_names(&self) -> &MeshNames {
        &self.names
    }

    /// Other names for the mesh's exchanges and dead-letter queue.
    pub fn names(mut self, names: MeshNames) -> Self {
        self.names = names;
        self
    }

    /// How long requests wait for a response unless they say otherwise (60 s by default).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.default_timeout = timeout;
        self
    }

    /// Declares the mesh's exchanges (idempotently) whenever the endpoint connects.
    pub fn configure_mesh_on_connect(mut self, yes: bool) -> Self {
        self.configure_mesh = yes;
        self
    }

    /// A fixed instance id for a client (a service takes its own from [`Service::instance_id`]).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// How many commands and events may wait to be sent, and how many bytes to be written,
    /// before [`Client::command`] and [`Client::publish_event`] refuse more (see
    /// [`SendLimits`]).
    pub fn send_limits(mut self, limits: SendLimits) -> Self {
        self.send_limits = limits;
        self
    }

    /// Connects a client-only participant; returns when it is ready.
    pub async fn client(&self) -> Result<Client, NuropbError> {
        let instance_id = self.instance_id.clone().unwrap_or_else(random_hex);
        let config =
            EndpointConfig::client(self.settings.vhost.clone(), instance_id, random_seed());
        self.start(config, None).await
    }

    /// Connects a client that also listens to events on `patterns` (on a queue of its own,
    /// deleted with the connection) and calls `callback` for each.
    pub async fn listener<F, Fut>(
        &self,
        patterns: Vec<String>,
        callback: F,
    ) -> Result<Client, NuropbError>
    where
        F: Fn(IncomingEvent, CallContext) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<(), NuropbError>> + Send + 'static,
    {
        let instance_id = self.instance_id.clone().unwrap_or_else(random_hex);
        let mut config =
            EndpointConfig::client(self.settings.vhost.clone(), instance_id, random_seed());
        config.listen = patterns;
        let handlers = Handlers {
            methods: HashMap::new(),
            events: Some(service::event_fn(callback)),
        };
        self.start(config, Some(Arc::new(handlers))).await
    }

    /// Connects `service` and serves it; returns its handle when it is ready. The service runs
    /// until [`Client::shutdown`].
    pub async fn serve(&self, service: Service) -> Result<Client, NuropbError> {
        let instance_id = service.instance_id.clone().unwrap_or_else(random_hex);
        let mut service_config = ServiceConfig::new(service.spec.clone());
        service_config.rpc_bindings = service.rpc_bindings.clone();
        service_config.event_bindings = service.event_bindings.clone();
        service_config.prefetch = service.prefetch;
        service_config.private_key = service.private_key.clone();
        service_config.quorum_queue = service.quorum_queue;
        let config = EndpointConfig::service(
            self.settings.vhost.clone(),
            instance_id,
            service_config,
            random_seed(),
        );
        let handlers = Handlers {
            methods: service.handlers,
            events: service.event_handler,
        };
        self.start(config, Some(Arc::new(handlers))).await
    }

    async fn start(
        &self,
        mut config: EndpointConfig,
        handlers: Option<Arc<Handlers>>,
    ) -> Result<Client, NuropbError> {
        config.names = self.names.clone();
        config.default_timeout = self.default_timeout;
        config.configure_mesh_on_connect = self.configure_mesh;
        // The endpoint keeps as many messages for the connection as the handles may hand it.
        config.max_outbox = self.send_limits.messages.max(1);
        let name = config.name();
        let instance_id = config.instance_id.clone();
        let targets = self.settings.targets()?;
        config.nodes = targets
            .iter()
            .map(|t| format!("{}:{}", t.host, t.port))
            .collect();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Shown by RabbitMQ as the connection's name: which participant, which instance.
        let amqp = self
            .settings
            .amqp_config()
            .connection_name(format!("{name} {instance_id}"));
        let endpoint = Endpoint::new(config, amqp, Instant::now(), unix)?;
        let ids = endpoint.correlation_ids();
        let (commands, receiver) = mpsc::unbounded();
        let (ready, started) = oneshot::channel();
        let backlog = Arc::new(backlog::Backlog::new(self.send_limits));
        let state = Arc::new(state::SharedState::new());
        let driver = Driver::new(
            self.runtime.clone(),
            targets,
            endpoint,
            handlers,
            (receiver, backlog.clone(), state.clone()),
            ready,
        );
        self.runtime.spawn(Box::pin(driver));
        started.await.map_err(|_| {
            NuropbError::new(ErrorKind::Transport, "the endpoint stopped while starting")
        })??;
        let client = Client {
            commands,
            backlog,
            state,
            ids,
            name,
            instance_id,
        };
        tracing::debug!(settings = %self.settings, "connected");
        Ok(client)
    }
}
