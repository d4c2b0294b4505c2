//! A deterministic simulation of a whole mesh: any number of AMQP client connections and NuroPb
//! endpoints, one [`Broker`], in-memory links, a virtual clock and a seeded random generator.
//!
//! Modelled on quinn-proto's test pair: nothing here sleeps or reads a clock. [`Sim`] moves bytes
//! along its links, opens the sockets endpoints ask for, runs the endpoints' handlers, wakes every
//! state machine when its timer is due, and jumps the clock to the next thing that can happen when
//! nothing can happen now. The same seed gives the same run: link latencies, chunk splits, the
//! order in which links deliver at one instant, reconnect jitter, the endpoints' correlation ids
//! and the broker's generated names all come from it (the bytes of encrypted messages do not:
//! their keys and IVs come from the OS).
//!
//! The broker may be reached through several **broker nodes**, as a RabbitMQ cluster is: one
//! broker state, several doors, each of which can be up, down (refusing sockets) or broken
//! (taking a socket and closing it before the handshake). An endpoint configured with several
//! [`EndpointConfig::nodes`] asks for them by index.
//!
//! - [`config`]: latency, chunk splitting, the step bound, the wire tap.
//! - [`handler`]: a service's behaviour as a closure — a [`Reply`] now, later, or never.
//! - [`node`]: the participants and what each endpoint [recorded](Record).
//! - [`tap`]: the wire tap that checks every delivery is settled exactly once.
//! - [`seed`]: seeds from the environment, and runs over many seeds that name the failing one.
//! - `run` (stepping and the run loops) and `fault` (dropped sockets, silent partitions, broker
//!   restarts, deleted queues, forced channel and connection closes) add methods to [`Sim`].
//!
//! ```
//! use nuropb_proto::describe::{MethodSpec, ServiceSpec};
//! use nuropb_proto::mesh::{EndpointConfig, Request, ServiceConfig};
//! use nuropb_testkit::sim::{Reply, Sim, SimConfig, Work};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! let mut sim = Sim::new(7, SimConfig::default());
//! let spec = ServiceSpec::new("echo").method(MethodSpec::new("say"));
//! let service = sim.add_endpoint(
//!     "echo",
//!     EndpointConfig::service("/", "s1", ServiceConfig::new(spec), 1),
//!     Some(Box::new(|work: &Work<'_>| match work {
//!         Work::Call(call) => Reply::ok(json!(call.params)),
//!         Work::Event(_) => Reply::ok(json!(null)),
//!     })),
//! );
//! let client = sim.add_endpoint("client", EndpointConfig::client("/", "c1", 2), None);
//! sim.run_until("both ready", Duration::from_secs(5), |s| {
//!     s.record(service).readies == 1 && s.record(client).readies == 1
//! });
//! let id = sim
//!     .request(client, Request::new("echo", "say").params(json!({"x": 1})))
//!     .unwrap();
//! sim.run_until("the response", Duration::from_secs(5), |s| s.response(client, id).is_some());
//! assert_eq!(sim.response(client, id).unwrap().as_ref().unwrap(), &json!({"x": 1}));
//! ```

pub mod config;
mod fault;
pub mod handler;
mod link;
pub mod node;
mod run;
pub mod seed;
pub mod tap;

pub use config::SimConfig;
pub use handler::{Handler, Reply, Work};
pub use node::{NodeId, Record};
pub use run::SimError;
pub use tap::{Tap, TapStats};

use crate::broker::{Broker, BrokerConfig, ConnectionId};
use link::Link;
use node::{ClientPeer, EndpointPeer, Node, Peer};
use nuropb_proto::NuropbError;
use nuropb_proto::amqp::{self, Connection};
use nuropb_proto::mesh::{Endpoint, EndpointConfig, OutgoingEvent, Request, RequestId};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How a broker node takes a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BrokerNode {
    /// It accepts, and the broker answers.
    Up,
    /// It refuses (connection refused).
    Down,
    /// It accepts the socket and closes it at once, before any handshake (a node that is
    /// starting, a proxy in front of a dead node).
    Broken,
}

/// A simulated mesh; see the [module documentation](self).
///
/// A test adds participants ([`add_endpoint`](Sim::add_endpoint), [`add_client`](Sim::add_client)),
/// acts through them (requests, raw publishes), runs the simulation
/// ([`run_until`](Sim::run_until), [`run_for`](Sim::run_for), [`settle`](Sim::settle)), injects
/// faults, and asserts on what the participants [recorded](Sim::record), on the broker
/// ([`broker`](Sim::broker)) and on the [tap](Sim::tap). If the test panics while the simulation
/// is alive, the simulation prints its seed and how to run it again.
pub struct Sim {
    seed: u64,
    config: SimConfig,
    pub(crate) broker: Broker,
    start: Instant,
    pub(crate) now: Instant,
    pub(crate) rng: SmallRng,
    pub(crate) nodes: Vec<Node>,
    pub(crate) tap: Option<Tap>,
    /// While the broker restarts, connections are refused.
    pub(crate) down_until: Option<Instant>,
    /// The broker nodes, by index: how each takes a socket.
    pub(crate) broker_nodes: Vec<BrokerNode>,
    /// Connections the broker still holds whose client it can no longer reach (see
    /// [`partition`](Sim::partition)).
    pub(crate) unreachable: Vec<ConnectionId>,
    pub(crate) buf: Vec<u8>,
    pub(crate) seq: u64,
    /// Steps taken, over the whole run.
    pub(crate) steps: u64,
    /// Node indices in delivery order, reused.
    pub(crate) order: Vec<usize>,
    /// Whether the last step did anything.
    pub(crate) last_progress: bool,
    /// Emptied buffers to hand out again.
    pub(crate) pool: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("elapsed", &self.elapsed())
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", seed::rerun_hint(self.seed, self.elapsed()));
        }
    }
}

impl Sim {
    /// A simulation with a default broker (guest/guest, any virtual host, NuroPb's exchanges
    /// declared in every virtual host), seeded with `seed`.
    pub fn new(seed: u64, config: SimConfig) -> Sim {
        let broker = BrokerConfig {
            declare_mesh_exchanges: true,
            ..BrokerConfig::default()
        };
        Sim::with_broker(seed, config, broker)
    }

    /// A simulation with a broker configured as given (its `seed` and `unix_time_origin` are
    /// taken from the simulation).
    pub fn with_broker(seed: u64, config: SimConfig, broker: BrokerConfig) -> Sim {
        let start = Instant::now();
        let broker = Broker::new(BrokerConfig {
            seed: seed ^ 0x5eed_b0c3,
            unix_time_origin: config.unix_time_origin,
            ..broker
        });
        Sim {
            seed,
            tap: config.tap.then(Tap::default),
            config,
            broker,
            start,
            now: start,
            rng: SmallRng::seed_from_u64(seed),
            nodes: Vec::new(),
            down_until: None,
            broker_nodes: vec![BrokerNode::Up],
            unreachable: Vec::new(),
            buf: Vec::with_capacity(64 * 1024),
            seq: 0,
            steps: 0,
            order: Vec::new(),
            last_progress: true,
            pool: Vec::new(),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Sets the latency range of every link from now on.
    pub fn set_latency(&mut self, min: Duration, max: Duration) {
        self.config.latency = (min, max.max(min));
    }

    /// The simulated time now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Unix seconds now, on the simulation's wall clock.
    pub fn unix_time(&self) -> u64 {
        self.config.unix_time_origin + self.elapsed().as_secs()
    }

    /// Steps taken since the start.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The broker, to change it directly (prefer the fault methods, which keep links in step).
    pub fn broker_mut(&mut self) -> &mut Broker {
        &mut self.broker
    }

    /// The wire tap, when [`SimConfig::tap`] is on.
    pub fn tap(&self) -> Option<&Tap> {
        self.tap.as_ref()
    }

    /// The simulation's random generator.
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    /// A new generator seeded from the simulation's, for a handler to own.
    pub fn fork_rng(&mut self) -> SmallRng {
        SmallRng::seed_from_u64(self.rng.random())
    }

    // ----- participants -----

    /// Adds a NuroPb endpoint that logs in as guest/guest to `config.vhost` and connects at
    /// once; `handler` serves its calls and events. Without a handler, calls and events are only
    /// recorded and never completed (a client only, or a listener whose events need no
    /// completion).
    pub fn add_endpoint(
        &mut self,
        name: &str,
        config: EndpointConfig,
        handler: Option<Handler>,
    ) -> NodeId {
        let amqp = amqp::Config::new("guest", "guest", config.vhost.clone());
        self.add_endpoint_with(name, config, amqp, handler)
    }

    /// Adds a NuroPb endpoint with its own AMQP settings.
    pub fn add_endpoint_with(
        &mut self,
        name: &str,
        config: EndpointConfig,
        amqp: amqp::Config,
        handler: Option<Handler>,
    ) -> NodeId {
        let endpoint = Endpoint::new(config, amqp, self.now, self.unix_time())
            .expect("a valid endpoint configuration");
        let peer = Peer::Endpoint(Box::new(EndpointPeer {
            endpoint,
            handler,
            scheduled: Default::default(),
            connect_to: None,
            record: Record::default(),
        }));
        // It asks for its socket itself (its first output).
        self.add_node(name, peer)
    }

    /// Adds a plain AMQP client connection; it connects at once. Drive it through
    /// [`client`](Sim::client) and read its events from [`client_events`](Sim::client_events).
    pub fn add_client(&mut self, name: &str, config: amqp::Config) -> NodeId {
        let conn = Connection::new(config, self.now).expect("a valid AMQP configuration");
        let peer = Peer::Client(Box::new(ClientPeer {
            conn,
            events: VecDeque::new(),
        }));
        self.add_node(name, peer)
    }

    fn add_node(&mut self, name: &str, peer: Peer) -> NodeId {
        let index = self.nodes.len();
        let client = matches!(peer, Peer::Client(_));
        self.nodes.push(Node {
            name: name.to_owned(),
            peer,
            link: None,
        });
        if client {
            // A plain client connects at once, through the first broker node.
            if self.open_link(index, 0).is_err() {
                self.nodes[index].handle_eof(self.now);
            }
        }
        NodeId(index)
    }

    /// Opens a socket for participant `index` through broker node `via`: `Err` when the node
    /// refuses it (down, or the whole broker restarting).
    pub(crate) fn open_link(&mut self, index: usize, via: usize) -> Result<(), &'static str> {
        let node = self
            .broker_nodes
            .get(via)
            .copied()
            .unwrap_or(BrokerNode::Down);
        if self.down_until.is_some_and(|t| t > self.now) || node == BrokerNode::Down {
            return Err("connection refused");
        }
        let c = self.broker.accept(self.now);
        if let Some(tap) = &mut self.tap {
            tap.open(c);
        }
        let mut link = Link::new(c, via);
        // A broken node: the socket closes before anything arrives.
        link.broker_done = node == BrokerNode::Broken;
        self.nodes[index].link = Some(link);
        Ok(())
    }

    // ----- broker nodes -----

    /// Makes the broker reachable through `count` nodes (at least one), all up; endpoints name
    /// them by index in [`EndpointConfig::nodes`].
    pub fn set_broker_nodes(&mut self, count: usize) {
        self.broker_nodes = vec![BrokerNode::Up; count.max(1)];
    }

    /// How broker node `node` takes sockets from now on. A node that goes [`BrokerNode::Down`]
    /// drops the sockets it holds (their participants read end of file; the broker forgets their
    /// connections, requeueing what they had not acknowledged), as a node that dies does.
    pub fn set_broker_node(&mut self, node: usize, how: BrokerNode) {
        if node >= self.broker_nodes.len() {
            self.broker_nodes.resize(node + 1, BrokerNode::Up);
        }
        self.broker_nodes[node] = how;
        if how == BrokerNode::Down {
            for i in 0..self.nodes.len() {
                if self.nodes[i].link.as_ref().is_some_and(|l| l.via == node) {
                    self.drop_link(i);
                    self.nodes[i].handle_eof(self.now);
                }
            }
        }
    }

    /// Broker node `node`'s state.
    pub fn broker_node(&self, node: usize) -> BrokerNode {
        self.broker_nodes
            .get(node)
            .copied()
            .unwrap_or(BrokerNode::Down)
    }

    /// The broker node participant `node`'s socket goes through, if it has one.
    pub fn via(&self, node: NodeId) -> Option<usize> {
        self.nodes[node.0].link.as_ref().map(|l| l.via)
    }

    /// The name a node was given.
    pub fn name(&self, node: NodeId) -> &str {
        &self.nodes[node.0].name
    }

    /// The broker's id of the node's current connection, if it has one.
    pub fn connection_of(&self, node: NodeId) -> Option<ConnectionId> {
        self.nodes[node.0].link.as_ref().map(|l| l.conn)
    }

    fn endpoint_peer(&self, node: NodeId) -> &EndpointPeer {
        match &self.nodes[node.0].peer {
            Peer::Endpoint(e) => e,
            Peer::Client(_) => panic!("{} is not an endpoint", self.nodes[node.0].name),
        }
    }

    fn endpoint_peer_mut(&mut self, node: NodeId) -> &mut EndpointPeer {
        let name = self.nodes[node.0].name.clone();
        match &mut self.nodes[node.0].peer {
            Peer::Endpoint(e) => e,
            Peer::Client(_) => panic!("{name} is not an endpoint"),
        }
    }

    /// The endpoint of `node`. Panics if it is a plain client.
    pub fn endpoint(&self, node: NodeId) -> &Endpoint {
        &self.endpoint_peer(node).endpoint
    }

    /// The endpoint of `node`, to act on (what it sends goes out on the next step).
    pub fn endpoint_mut(&mut self, node: NodeId) -> &mut Endpoint {
        &mut self.endpoint_peer_mut(node).endpoint
    }

    /// What the endpoint of `node` observed.
    pub fn record(&self, node: NodeId) -> &Record {
        &self.endpoint_peer(node).record
    }

    /// Replaces the handler of `node`.
    pub fn set_handler(&mut self, node: NodeId, handler: Option<Handler>) {
        self.endpoint_peer_mut(node).handler = handler;
    }

    /// The AMQP connection of a plain client `node`. Panics if it is an endpoint.
    pub fn client(&mut self, node: NodeId) -> &mut Connection {
        let name = self.nodes[node.0].name.clone();
        match &mut self.nodes[node.0].peer {
            Peer::Client(c) => &mut c.conn,
            Peer::Endpoint(_) => panic!("{name} is not a plain client"),
        }
    }

    /// The events the plain client `node` received and the test has not taken yet.
    pub fn client_events(&mut self, node: NodeId) -> &mut VecDeque<amqp::Event> {
        let name = self.nodes[node.0].name.clone();
        match &mut self.nodes[node.0].peer {
            Peer::Client(c) => &mut c.events,
            Peer::Endpoint(_) => panic!("{name} is not a plain client"),
        }
    }

    /// How many events the plain client `node` holds for the test.
    pub fn client_event_count(&self, node: NodeId) -> usize {
        match &self.nodes[node.0].peer {
            Peer::Client(c) => c.events.len(),
            Peer::Endpoint(_) => 0,
        }
    }

    // ----- acting through endpoints -----

    /// Sends a request from `node` now.
    pub fn request(&mut self, node: NodeId, request: Request) -> Result<RequestId, NuropbError> {
        let now = self.now;
        self.endpoint_mut(node).request(request, now)
    }

    /// Sends a command from `node` now; returns its correlation id.
    pub fn command(&mut self, node: NodeId, request: Request) -> Result<String, NuropbError> {
        let now = self.now;
        self.endpoint_mut(node).command(request, now)
    }

    /// Publishes an event from `node` now; returns its correlation id.
    pub fn publish_event(
        &mut self,
        node: NodeId,
        event: OutgoingEvent,
    ) -> Result<String, NuropbError> {
        let now = self.now;
        self.endpoint_mut(node).publish_event(event, now)
    }

    /// Asks `service` to describe itself, from `node`.
    pub fn describe(&mut self, node: NodeId, service: &str) -> Result<RequestId, NuropbError> {
        let now = self.now;
        self.endpoint_mut(node).describe(service, now)
    }

    /// The response `node` got for `request`, if any yet.
    pub fn response(
        &self,
        node: NodeId,
        request: RequestId,
    ) -> Option<&Result<Value, NuropbError>> {
        self.record(node).responses.get(&request)
    }

    /// Forgets the responses `node` recorded (long runs keep memory flat this way).
    pub fn take_responses(
        &mut self,
        node: NodeId,
    ) -> HashMap<RequestId, Result<Value, NuropbError>> {
        std::mem::take(&mut self.endpoint_peer_mut(node).record.responses)
    }
}
