//! Building and running a container: [`Container`] says what to run and how; [`Container::start`]
//! runs it and returns its [`ContainerHandle`].

use crate::driver::{Driver, Shared};
use crate::election::{Election, ElectionConfig, Fence, Notice};
use crate::etcd::EtcdSettings;
use crate::health::HealthThresholds;
use crate::mesh::{Mesh, ServiceFactory};
use crate::state::ContainerState;
use nuropb_api::{Client, Connector, Service};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};

/// How many notices a slow [`ContainerHandle::notices`] receiver may fall behind by before it
/// loses the oldest.
const NOTICES: usize = 256;

/// How the leader watches its service (see [`crate::health`] for what it advises when).
#[derive(Clone, Debug, PartialEq)]
pub struct HealthConfig {
    /// How often the leader samples the queues and writes the health record (10 s).
    pub every: Duration,
    /// When it advises what.
    pub thresholds: HealthThresholds,
    /// The topic its advice is published on (`nuropb.container.advice`).
    pub advice_topic: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            every: Duration::from_secs(10),
            thresholds: HealthThresholds::default(),
            advice_topic: "nuropb.container.advice".to_owned(),
        }
    }
}

/// One instance of a service, run standalone or under etcd leader election — Python NuroPb's
/// `ServiceContainer`, key for key, so Python and Rust instances of one service share one
/// election.
///
/// Standalone (no [`Container::etcd`]), it configures the mesh and serves. With etcd, the
/// instances of the service elect a leader; the leader configures the mesh, says so under
/// `/nuropb/{service}/rmq-config-ok`, and watches the service queue; the others consume once the
/// flag is written under the current leader. See [`crate::election`] for the rules.
///
/// The service is made by `factory`: once at [`Container::new`] (for its name), and again when
/// the endpoint must be served anew (a leader prefetch that differs from the followers').
///
/// ```no_run
/// use nuropb_container::{Container, EtcdSettings};
/// use nuropb_tokio::{CallContext, ConnectionSettings, Method, NuropbError, Service};
///
/// # async fn run() -> Result<(), NuropbError> {
/// let settings = ConnectionSettings::from_url("amqp://guest:guest@127.0.0.1:5672/nuropb")?;
/// let greeter = || {
///     Service::new("greeter").method(Method::new("hello", |_ctx: CallContext, name: String| async move {
///         Ok::<_, NuropbError>(format!("hello {name}"))
///     }))
/// };
/// let container = Container::new(nuropb_tokio::connector(settings), greeter)
///     .etcd(EtcdSettings::new(["http://127.0.0.1:2379"]))
///     .leader_prefetch(1)
///     .start();
/// let running = container.wait_until(|s| s.phase == nuropb_container::Phase::Running).await;
/// println!("{running}"); // e.g. "follower, running, etcd connected"
/// container.stop().await;
/// # Ok(()) }
/// ```
pub struct Container {
    connector: Connector,
    factory: ServiceFactory,
    etcd: Option<EtcdSettings>,
    instance_id: Option<String>,
    leader_prefetch: Option<u16>,
    health: HealthConfig,
    create_vhost: bool,
    lease_ttl: Duration,
    grace: Duration,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("connector", &self.connector)
            .field("etcd", &self.etcd)
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

impl Container {
    /// A container of the service `factory` makes, on the mesh `connector` reaches; standalone
    /// until [`Container::etcd`] is given.
    pub fn new<F>(connector: Connector, factory: F) -> Container
    where
        F: Fn() -> Service + Send + Sync + 'static,
    {
        Container {
            connector,
            factory: Arc::new(factory),
            etcd: None,
            instance_id: None,
            leader_prefetch: None,
            health: HealthConfig::default(),
            create_vhost: true,
            lease_ttl: crate::keys::LEASE_TTL,
            grace: Duration::from_secs(10),
        }
    }

    /// Elects a leader through etcd at `etcd`.
    pub fn etcd(mut self, etcd: EtcdSettings) -> Self {
        self.etcd = Some(etcd);
        self
    }

    /// The instance id: the leader key's value when it leads, and the service's instance id
    /// (random hex digits, as Python's `uuid4().hex`, by default).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = Some(id.into());
        self
    }

    /// The leader's prefetch, smaller than the followers' (the service's own) as Python's
    /// documentation suggests, for the leader's extra duties. An instance that becomes leader
    /// (or stops being it) while serving is served anew with its new prefetch.
    pub fn leader_prefetch(mut self, prefetch: u16) -> Self {
        self.leader_prefetch = Some(prefetch);
        self
    }

    /// How the leader watches its service.
    pub fn health(mut self, health: HealthConfig) -> Self {
        self.health = health;
        self
    }

    /// Whether configuring the mesh creates the vhost through the management API first (yes by
    /// default, as Python; no for a broker without that API, such as the testkit's).
    pub fn create_vhost(mut self, yes: bool) -> Self {
        self.create_vhost = yes;
        self
    }

    /// The lease's time to live (15 s, as Python; instances of one service should agree).
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// How long running handlers may take to finish when the service stops or is served anew
    /// (10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Starts the container on the current tokio runtime. Panics outside one.
    pub fn start(self) -> ContainerHandle {
        let instance_id = self.instance_id.unwrap_or_else(nuropb_api::random_hex);
        let dead_letters = self.connector.mesh_names().dead_letter_queue.clone();
        let mesh = Mesh::new(
            self.connector,
            self.factory,
            instance_id.clone(),
            self.create_vhost,
            dead_letters,
        );
        let mut config = ElectionConfig::new(&mesh.service, instance_id.clone());
        config.lease_ttl = self.lease_ttl;
        config.leader_prefetch = self.leader_prefetch;
        config.health_every = self.health.every;
        let seed = {
            let mut bytes = [0u8; 8];
            let _ = getrandom::fill(&mut bytes);
            u64::from_le_bytes(bytes)
        };
        let election = match &self.etcd {
            Some(_) => Election::new(config, std::time::Instant::now(), seed),
            None => Election::standalone(config, seed),
        };
        let (state, state_rx) = watch::channel(election.state());
        let (fence, fence_rx) = watch::channel(None);
        let (client, client_rx) = watch::channel(None);
        let (notices, _) = broadcast::channel(NOTICES);
        let (done, done_rx) = watch::channel(false);
        let (stop, stop_rx) = mpsc::channel(1);
        let handle = ContainerHandle {
            instance_id: instance_id.into(),
            service: mesh.service.clone().into(),
            state: state_rx,
            fence: fence_rx,
            client: client_rx,
            notices: notices.clone(),
            first_notices: Arc::new(std::sync::Mutex::new(Some(notices.subscribe()))),
            stop,
            done: done_rx,
        };
        let driver = Driver {
            election,
            mesh,
            etcd: self.etcd,
            health: self.health,
            grace: self.grace,
            shared: Shared {
                state,
                fence,
                client,
                notices,
                done,
            },
            stop: stop_rx,
        };
        tokio::spawn(driver.run());
        handle
    }
}

/// A running container: its state, its notices, its leadership; and a way to stop it. Cheap to
/// clone. The container runs until [`ContainerHandle::stop`], even when every handle is gone.
#[derive(Clone, Debug)]
pub struct ContainerHandle {
    instance_id: Arc<str>,
    service: Arc<str>,
    state: watch::Receiver<ContainerState>,
    fence: watch::Receiver<Option<Fence>>,
    client: watch::Receiver<Option<Client>>,
    notices: broadcast::Sender<Notice>,
    /// Subscribed before the container started: the first [`ContainerHandle::notices`] gets it.
    first_notices: Arc<std::sync::Mutex<Option<broadcast::Receiver<Notice>>>>,
    stop: mpsc::Sender<()>,
    done: watch::Receiver<bool>,
}

impl ContainerHandle {
    /// The instance id.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The state, as last known: for health checks and readiness probes.
    pub fn state(&self) -> ContainerState {
        *self.state.borrow()
    }

    /// The state as it changes.
    pub fn states(&self) -> watch::Receiver<ContainerState> {
        self.state.clone()
    }

    /// What happens from now on, in order (see [`Notice`]) — from the very start for the first
    /// receiver asked for; a receiver more than 256 behind loses the oldest.
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        let first = self.first_notices.lock().ok().and_then(|mut f| f.take());
        first.unwrap_or_else(|| self.notices.subscribe())
    }

    /// The leadership, while this instance leads: what its leader-only writes are fenced with.
    pub fn fence(&self) -> Option<Fence> {
        self.fence.borrow().clone()
    }

    /// The served endpoint's handle, while the service is served: to call other services, or
    /// publish events, as the service.
    pub fn client(&self) -> Option<Client> {
        self.client.borrow().clone()
    }

    /// Waits until the state is one `wanted` accepts (or the container has stopped), and
    /// returns it.
    pub async fn wait_until(&self, wanted: impl Fn(&ContainerState) -> bool) -> ContainerState {
        let mut states = self.state.clone();
        match states
            .wait_for(|s| wanted(s) || crate::driver::stopped(s))
            .await
        {
            Ok(state) => *state,
            Err(_) => self.state(),
        }
    }

    /// Stops the container: revokes its lease (handing any leadership over at once), stops
    /// serving with the shutdown grace, and returns once it has stopped.
    pub async fn stop(&self) {
        let _ = self.stop.try_send(());
        let mut done = self.done.clone();
        let _ = done.wait_for(|done| *done).await;
    }
}
