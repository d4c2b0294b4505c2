//! How an endpoint is set up: its role on the mesh, the mesh's names, its limits.

use crate::crypto::{KeyStoreConfig, PrivateKey};
use crate::describe::ServiceSpec;
use crate::mesh::backoff::Backoff;
use crate::mesh::names;
use crate::message::Exchanges;
use std::time::Duration;

/// The names of the mesh's exchanges and dead-letter queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshNames {
    /// The rpc (direct) and events (topic) exchanges.
    pub exchanges: Exchanges,
    /// The dead-letter (fanout) exchange every service queue dead-letters to.
    pub dead_letter_exchange: String,
    /// The queue bound to the dead-letter exchange by [`crate::mesh::Endpoint::configure_mesh`].
    pub dead_letter_queue: String,
}

impl Default for MeshNames {
    fn default() -> Self {
        MeshNames {
            exchanges: Exchanges::default(),
            dead_letter_exchange: "nuropb-dl-exchange".to_owned(),
            dead_letter_queue: names::DEAD_LETTER_QUEUE.to_owned(),
        }
    }
}

/// What a service offers and how it consumes.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The declared service: its name and methods.
    pub spec: ServiceSpec,
    /// Extra routing keys on the rpc exchange besides the service name.
    pub rpc_bindings: Vec<String>,
    /// Topic patterns (`*`, `#`) of events to receive.
    pub event_bindings: Vec<String>,
    /// How many deliveries may be unacknowledged at once (0 = unlimited); Python's default is 1.
    pub prefetch: u16,
    /// The private key for encrypted methods.
    pub private_key: Option<PrivateKey>,
    /// Declares the service queue as a quorum queue (`x-queue-type: quorum`), replicated over a
    /// RabbitMQ cluster's nodes so that it outlives any one of them; a classic queue (Python's,
    /// and the default) lives on one node. RabbitMQ refuses (406) a declaration that differs from
    /// the queue's, so every instance of the service must agree — Python NuroPb instances, which
    /// declare classic queues, cannot share such a service; callers are not affected.
    pub quorum_queue: bool,
}

impl ServiceConfig {
    /// A service with the given declaration, prefetch 1, no extra bindings, no key, a classic
    /// queue.
    pub fn new(spec: ServiceSpec) -> Self {
        ServiceConfig {
            spec,
            rpc_bindings: Vec::new(),
            event_bindings: Vec::new(),
            prefetch: 1,
            private_key: None,
            quorum_queue: false,
        }
    }
}

/// An endpoint's configuration.
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// The virtual host, used to name a client-only participant.
    pub vhost: String,
    /// This participant's instance id (Python: `uuid4().hex`). A fixed id makes a single-instance
    /// participant: a second one with the same id is refused by the broker.
    pub instance_id: String,
    /// `Some` for a service, `None` for a client-only participant.
    pub service: Option<ServiceConfig>,
    /// Mesh names.
    pub names: MeshNames,
    /// How long a request may wait for its response when the caller gives no timeout.
    pub default_timeout: Duration,
    /// At most this many requests wait for a response at once; more are refused.
    pub max_pending_requests: usize,
    /// At most this many messages wait for the connection; more are refused.
    pub max_outbox: usize,
    /// Limits of the stores of encryption keys.
    pub key_store: KeyStoreConfig,
    /// Declares the mesh's exchanges (and the dead-letter queue) on every connect, before the
    /// service's own queues; off by default, as in Python, where it is a separate step.
    pub configure_mesh_on_connect: bool,
    /// Topic patterns this participant listens to on a queue of its own (exclusive, deleted with
    /// the connection): events arrive as [`crate::mesh::Output::Incoming`] and need no
    /// completion. For clients that watch events without being a service.
    pub listen: Vec<String>,
    /// The broker's nodes (names for errors and logs, e.g. `host:port`), in the order they are
    /// tried; [`crate::mesh::Output::Connect`] names them by index. Empty means one, the broker.
    pub nodes: Vec<String>,
    /// The reconnect schedule.
    pub backoff: Backoff,
    /// How many reconnect attempts one outage may take before the endpoint stops; `None` (the
    /// default) retries for ever, as a participant that outlives broker restarts must.
    pub max_reconnects: Option<u32>,
    /// Seed of the endpoint's randomness (correlation ids, reconnect jitter); adapters draw it
    /// from the OS, tests fix it.
    pub seed: u64,
}

impl EndpointConfig {
    /// A client-only participant on `vhost`.
    pub fn client(vhost: impl Into<String>, instance_id: impl Into<String>, seed: u64) -> Self {
        EndpointConfig {
            vhost: vhost.into(),
            instance_id: instance_id.into(),
            service: None,
            names: MeshNames::default(),
            default_timeout: Duration::from_secs(60),
            max_pending_requests: 65_536,
            max_outbox: 65_536,
            key_store: KeyStoreConfig::default(),
            configure_mesh_on_connect: false,
            listen: Vec::new(),
            nodes: Vec::new(),
            backoff: Backoff::default(),
            max_reconnects: None,
            seed,
        }
    }

    /// A service participant on `vhost`.
    pub fn service(
        vhost: impl Into<String>,
        instance_id: impl Into<String>,
        service: ServiceConfig,
        seed: u64,
    ) -> Self {
        EndpointConfig {
            service: Some(service),
            ..EndpointConfig::client(vhost, instance_id, seed)
        }
    }

    /// The name this participant goes by: the service name, or `{vhost}-client`.
    pub fn name(&self) -> String {
        match &self.service {
            Some(service) => service.spec.name.clone(),
            None => names::client_name(&self.vhost),
        }
    }

    /// The queue responses to this participant's requests come back on.
    pub fn response_queue(&self) -> String {
        names::response_queue(&self.name(), &self.instance_id)
    }

    /// The queue the [`EndpointConfig::listen`] patterns are bound to.
    pub fn listen_queue(&self) -> String {
        names::listen_queue(&self.name(), &self.instance_id)
    }
}
