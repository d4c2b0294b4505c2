//! The participants of a simulation: plain AMQP client connections, and NuroPb endpoints with
//! their handlers, their scheduled completions and what they observed.

use crate::sim::handler::Handler;
use crate::sim::link::Link;
use nuropb_proto::NuropbError;
use nuropb_proto::amqp::{self, Connection};
use nuropb_proto::mesh::{
    Call, CompleteError, DeliveryId, Endpoint, EventSpec, IncomingEvent, Outcome, RequestId,
    UnreadableMessage,
};
use nuropb_proto::message::MessageType;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

/// Identifies a participant of a [`Sim`](crate::sim::Sim).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub(crate) usize);

/// What an endpoint's driver saw, for tests to assert on.
#[derive(Debug, Default)]
pub struct Record {
    /// The one response of each request, by id.
    pub responses: HashMap<RequestId, Result<Value, NuropbError>>,
    /// Requests that got a second response (a broken promise of the endpoint).
    pub duplicate_responses: Vec<RequestId>,
    /// Calls handed to the handler, in order (kept when [`SimConfig::record`] is on).
    ///
    /// [`SimConfig::record`]: crate::sim::SimConfig::record
    pub calls: Vec<Call>,
    /// Events handed to the handler, in order (kept when recording).
    pub incoming: Vec<IncomingEvent>,
    /// How many calls and events were handed out.
    pub handed_out: u64,
    /// Commands and events reported not delivered: correlation id, kind, error.
    pub not_delivered: Vec<(String, MessageType, NuropbError)>,
    /// Messages it could not read, as it reported them.
    pub unreadable: Vec<UnreadableMessage>,
    /// How many times the endpoint became ready.
    pub readies: u32,
    /// The errors of its disconnections.
    pub disconnects: Vec<NuropbError>,
    /// The broker nodes it asked to connect to, in order.
    pub connects: Vec<usize>,
    /// `Some` once it stopped, with the error it stopped for.
    pub stopped: Option<Option<NuropbError>>,
    /// How many times `configure_mesh` finished.
    pub mesh_configured: u32,
    /// What [`Endpoint::complete`] refused (stale deliveries after a reconnect, …).
    pub complete_errors: Vec<CompleteError>,
    /// Handlers that answered [`Reply::Hold`](crate::sim::Reply::Hold).
    pub held: usize,
}

/// A scheduled completion.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) delivery: DeliveryId,
    pub(crate) outcome: Outcome,
    pub(crate) events: Vec<EventSpec>,
}

/// A NuroPb endpoint and its driver's state.
pub(crate) struct EndpointPeer {
    pub(crate) endpoint: Endpoint,
    pub(crate) handler: Option<Handler>,
    pub(crate) scheduled: BTreeMap<(Instant, u64), Pending>,
    /// A socket the endpoint asked for, to open on the next step: the broker node.
    pub(crate) connect_to: Option<usize>,
    pub(crate) record: Record,
}

/// A plain AMQP client and the events it has not handed to the test yet.
pub(crate) struct ClientPeer {
    pub(crate) conn: Connection,
    pub(crate) events: VecDeque<amqp::Event>,
}

pub(crate) enum Peer {
    Client(Box<ClientPeer>),
    Endpoint(Box<EndpointPeer>),
}

/// One participant: its peer state machine and its socket, if any.
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) peer: Peer,
    pub(crate) link: Option<Link>,
}

impl Node {
    /// Bytes from the broker.
    pub(crate) fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        match &mut self.peer {
            Peer::Client(c) => c.conn.handle_input(bytes, now),
            Peer::Endpoint(e) => e.endpoint.handle_input(bytes, now),
        }
    }

    /// End of file on the socket.
    pub(crate) fn handle_eof(&mut self, now: Instant) {
        match &mut self.peer {
            Peer::Client(c) => c.conn.handle_eof(now),
            Peer::Endpoint(e) => e.endpoint.handle_eof(now),
        }
    }

    /// When the peer's state machine wants [`Node::handle_timeout`], and when the driver has
    /// something scheduled.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        match &self.peer {
            Peer::Client(c) => c.conn.poll_timeout(),
            Peer::Endpoint(e) => [
                e.endpoint.poll_timeout(),
                e.scheduled.keys().next().map(|(at, _)| *at),
            ]
            .into_iter()
            .flatten()
            .min(),
        }
    }

    /// Whether the driver has work that is not a timer of the peer: a handler running, a
    /// socket to open.
    pub(crate) fn busy(&self) -> bool {
        match &self.peer {
            Peer::Client(_) => false,
            Peer::Endpoint(e) => !e.scheduled.is_empty() || e.connect_to.is_some(),
        }
    }
}
