//! A sans-IO AMQP 0-9-1 broker with RabbitMQ's semantics.
//!
//! [`Broker`] owns every connection, virtual host, exchange, queue and message. It does no I/O and
//! reads no clock: bytes and time go in, bytes and deadlines come out. One value can serve a TCP
//! server ([`crate::server`]), a test that scripts a client frame by frame, or a simulator that
//! joins many in-memory client connections and steps them in virtual time.
//!
//! Layout, one concept per file:
//! - `input`: bytes to frames, the protocol header, the per-channel command assembler (RabbitMQ's
//!   content-frame rules and the 501/504/505 errors), and method dispatch;
//! - `connection`: the handshake (start, PLAIN/AMQPLAIN login, tune, open), the connection class
//!   and closing; `channel`: channel state and the channel class;
//! - `exchange` (the type, bindings) and `exchange_class` (declare/delete/bind/unbind);
//!   `routing` (topic and headers matching); `vhost`;
//! - `queue` (the type: ordered ready messages, TTL, length limits) and `queue_class`
//!   (declare/bind/unbind/purge/delete); `args` (queue argument validation and equivalence);
//! - `publish` (basic.publish, returns), `confirm` (publisher confirms), `consumer` (qos,
//!   consume, cancel), `delivery` (dispatch to consumers, basic.get), `ack` (ack/nack/reject/
//!   recover), `dead_letter` (`x-death` and dead-letter routing);
//! - `timers` (heartbeats, handshake and close timeouts, TTL expiry, consumer timeout);
//!   `introspect` (what tests ask about queues, bindings and connections); `message`, `props`
//!   (reading content properties without decoding them), `names`, `error`, `wire`.
//!
//! # Fidelity to RabbitMQ 3.10
//!
//! Reply codes, reply texts and the failing class/method ids were checked against RabbitMQ
//! 3.10.8 with raw clients for the declares, binds, deletes, purges, consumes, publishes, acks,
//! transactions, confirms and protocol violations the tests cover; `x-death` headers against its
//! dead letters. Known differences:
//!
//! - Frame-error texts name the problem without RabbitMQ's payload snippet
//!   (`FRAME_ERROR - type 9: unknown_frame` for `… type 9, all octets = <<>>: unknown_frame`),
//!   and the connection ends as soon as `connection.close` is written (the byte stream cannot be
//!   trusted to carry a `close-ok`).
//! - A body frame larger than its header announced closes the connection with 501; RabbitMQ
//!   waits forever. A message over [`BrokerConfig::max_message_size`] (16 MiB; RabbitMQ's
//!   default is 128 MiB) is refused when its header arrives, RabbitMQ refuses it once complete.
//!   A content method on a channel that is not open fails at the method (504), RabbitMQ after its
//!   content.
//! - Before `connection.open`, anything unexpected drops the socket at once; RabbitMQ waits a
//!   few seconds first.
//! - Time is exact where RabbitMQ polls: heartbeats go out after `H/2` of silence and a client
//!   silent for `2H` is dropped (RabbitMQ: between `2H` and `3H`); the consumer timeout fires at
//!   its deadline (RabbitMQ: on a one-minute tick).
//! - The keys of an `x-death` entry are written in key order (nested tables are `amq-protocol`
//!   `FieldTable`s); RabbitMQ writes a first death's entry as count, reason, queue, time,
//!   exchange, routing-keys, original-expiration. The top-level headers are sorted on both.
//! - Publisher confirms are one `basic.ack`/`nack` per publish, never `multiple`: every message
//!   is settled as it is published.
//! - Not implemented (arguments accepted, validated where RabbitMQ validates them, compared on
//!   redeclare, otherwise ignored): `x-expires`, `x-max-priority` (no priority order),
//!   `x-single-active-consumer`, `x-queue-type` (every queue is classic), `x-queue-mode`; `CC`
//!   and `BCC` header routing; direct reply-to; `connection.blocked` (never sent); permissions,
//!   users other than the configured one, and per-vhost limits.

mod ack;
mod admin;
mod args;
mod channel;
mod config;
mod confirm;
mod connection;
mod consumer;
mod dead_letter;
mod delivery;
mod error;
mod exchange;
mod exchange_class;
mod input;
mod introspect;
mod message;
mod names;
mod props;
mod publish;
mod queue;
mod queue_class;
mod raw_props;
mod routing;
mod timers;
mod vhost;
mod wire;

pub use config::BrokerConfig;
pub use error::reply_code;
pub use introspect::{
    BindingInfo, ConnectionInfo, ConnectionState, DestinationKind, ExchangeInfo, MessageInfo,
    QueueInfo,
};

use amq_protocol::protocol::AMQPClass;
use connection::{Connection, Phase};
use consumer::Consumer;
use dead_letter::Dead;
use error::AmqpError;
use names::NameGen;
use queue::{ConsumerId, Queue, QueueId};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;
use vhost::Vhost;

/// Identifies one client connection of a [`Broker`]. Ids are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    /// The id as a number (1 for the first connection accepted).
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// An in-memory AMQP 0-9-1 broker: frames in, frames out, time passed in.
///
/// # Driving it
///
/// The embedder owns the sockets (or in-memory links) and the clock:
///
/// 1. [`accept`](Self::accept) a new client connection; it returns a [`ConnectionId`].
/// 2. Give every byte read from that client to [`handle_input`](Self::handle_input), in any
///    chunking (half a frame, many frames: the output is the same).
/// 3. After any call, drain [`poll_transmit`](Self::poll_transmit) for **every** connection
///    that has output — a publish on one connection delivers to consumers on others. The bytes
///    of one call are coalesced frames; write them in order.
/// 4. Sleep until [`poll_timeout`](Self::poll_timeout) (heartbeats, message TTL, handshake and
///    close timeouts), then call [`handle_timeout`](Self::handle_timeout).
/// 5. When [`is_closed`](Self::is_closed) turns true, write what `poll_transmit` still gives,
///    close the socket and call [`disconnect`](Self::disconnect). Call `disconnect` too when the
///    socket goes away by itself: unacknowledged messages are requeued, consumers cancelled,
///    exclusive queues deleted.
///
/// Time only moves forward: every method taking `now` uses the latest instant it was given. The
/// broker never reads a clock, and server-chosen names come from a seeded generator, so the same
/// inputs give the same outputs.
///
/// Deliveries to a connection pause while more than
/// [`BrokerConfig::max_output_buffer`] bytes wait in its output, and resume when
/// `poll_transmit` takes them. An embedder should stop reading from a client whose
/// [`pending_output`](Self::pending_output) stays high.
///
/// ```
/// use nuropb_testkit::broker::{Broker, BrokerConfig};
/// use std::time::Instant;
///
/// let mut broker = Broker::new(BrokerConfig::default());
/// let now = Instant::now();
/// let c = broker.accept(now);
/// broker.handle_input(c, b"AMQP\x00\x00\x09\x01", now);
/// let mut start = Vec::new();
/// assert!(broker.poll_transmit(c, &mut start) > 0, "connection.start");
/// assert_eq!(&start[..3], &[1, 0, 0], "a method frame on channel 0");
/// assert_eq!(broker.poll_timeout(), Some(now + broker.config().handshake_timeout));
/// ```
///
/// Virtual hosts: any virtual host a client opens exists — it is created on its first
/// `connection.open` (see [`BrokerConfig::auto_create_vhosts`]).
#[derive(Debug)]
pub struct Broker {
    pub(crate) config: BrokerConfig,
    /// The latest instant the broker was given.
    pub(crate) now: Option<Instant>,
    /// The first instant, for wall-clock times.
    origin: Option<Instant>,
    pub(crate) connections: BTreeMap<ConnectionId, Connection>,
    next_connection: u64,
    pub(crate) vhosts: Vec<Vhost>,
    pub(crate) vhost_index: HashMap<String, usize>,
    pub(crate) queues: BTreeMap<QueueId, Queue>,
    pub(crate) next_queue: QueueId,
    pub(crate) consumers: BTreeMap<ConsumerId, Consumer>,
    pub(crate) next_consumer: ConsumerId,
    pub(crate) names: NameGen,
    /// Queues that may be able to deliver, waiting for dispatch.
    pub(crate) dirty: Vec<QueueId>,
    /// Messages on their way to a dead-letter exchange.
    pub(crate) dead: VecDeque<Dead>,
    /// Scratch space for routing.
    pub(crate) scratch: Vec<QueueId>,
}

impl Broker {
    /// A broker with the virtual host `/` and nothing else.
    pub fn new(config: BrokerConfig) -> Self {
        let mut broker = Broker {
            names: NameGen::new(config.seed),
            config,
            now: None,
            origin: None,
            connections: BTreeMap::new(),
            next_connection: 1,
            vhosts: Vec::new(),
            vhost_index: HashMap::new(),
            queues: BTreeMap::new(),
            next_queue: 1,
            consumers: BTreeMap::new(),
            next_consumer: 1,
            dirty: Vec::new(),
            dead: VecDeque::new(),
            scratch: Vec::new(),
        };
        broker.add_vhost("/");
        broker
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Creates virtual host `name` if it does not exist; returns whether it was created. Hosts
    /// made here exist even when [`BrokerConfig::auto_create_vhosts`] is off.
    pub fn add_vhost(&mut self, name: &str) -> bool {
        if self.vhost_index.contains_key(name) {
            return false;
        }
        self.vhost_index.insert(name.to_owned(), self.vhosts.len());
        self.vhosts
            .push(Vhost::new(name, self.config.declare_mesh_exchanges));
        true
    }

    /// Moves the clock forward to `now` (never backwards).
    pub(crate) fn tick(&mut self, now: Instant) -> Instant {
        let now = match self.now {
            Some(t) if t > now => t,
            _ => now,
        };
        self.now = Some(now);
        self.origin.get_or_insert(now);
        now
    }

    /// Unix seconds at `now`, from [`BrokerConfig::unix_time_origin`].
    pub(crate) fn wall_clock(&self, now: Instant) -> u64 {
        let since = self
            .origin
            .map_or(0, |o| now.saturating_duration_since(o).as_secs());
        self.config.unix_time_origin.saturating_add(since)
    }

    /// The bytes waiting for connection `c` in a buffer of their own; `None` when there are
    /// none (for tests; [`poll_transmit`](Self::poll_transmit) reuses the caller's buffer).
    pub fn take_transmit(&mut self, c: ConnectionId) -> Option<Vec<u8>> {
        let mut buf = Vec::new();
        (self.poll_transmit(c, &mut buf) > 0).then_some(buf)
    }

    /// A new client connection. It expects the AMQP protocol header first.
    pub fn accept(&mut self, now: Instant) -> ConnectionId {
        let now = self.tick(now);
        let id = ConnectionId(self.next_connection);
        self.next_connection += 1;
        let mut conn = Connection::new(now, now.checked_add(self.config.handshake_timeout));
        let open = self
            .connections
            .values()
            .filter(|c| c.phase != Phase::Closed)
            .count();
        if open >= self.config.max_connections {
            conn.phase = Phase::Closed;
        }
        self.connections.insert(id, conn);
        id
    }

    /// Handles bytes received from connection `c`, in any chunking. Unknown or closed
    /// connections ignore input. Never panics, whatever the bytes.
    pub fn handle_input(&mut self, c: ConnectionId, bytes: &[u8], now: Instant) {
        let now = self.tick(now);
        self.input(c, bytes, now);
        let limit = self.config.max_pending_output;
        if self
            .connections
            .get(&c)
            .is_some_and(|conn| conn.out.len() > limit && conn.phase != Phase::Closed)
        {
            // The client sends without reading: give up on it.
            self.close_silently(c);
        }
        self.run_dispatch(now);
    }

    /// Appends the bytes waiting for connection `c` to `buf` (swapped in without a copy when
    /// `buf` is empty), coalesced; returns how many — the shape of
    /// [`Connection::poll_transmit`](nuropb_proto::amqp::Connection::poll_transmit) and
    /// [`Endpoint::poll_transmit`](nuropb_proto::mesh::Endpoint::poll_transmit), per connection.
    pub fn poll_transmit(&mut self, c: ConnectionId, buf: &mut Vec<u8>) -> usize {
        let Some(conn) = self.connections.get_mut(&c) else {
            return 0;
        };
        let n = conn.out.len();
        if n == 0 {
            return 0;
        }
        conn.out_taken += n as u64;
        if buf.is_empty() {
            std::mem::swap(buf, &mut conn.out);
            conn.out.clear();
        } else {
            buf.extend_from_slice(&conn.out);
            conn.out.clear();
        }
        if std::mem::take(&mut conn.starved) {
            self.wake_consumers_of(c);
            if let Some(now) = self.now {
                self.run_dispatch(now);
            }
        }
        n
    }

    /// The connections that have bytes waiting in [`poll_transmit`](Self::poll_transmit), or
    /// that the broker is done with ([`is_closed`](Self::is_closed)), in id order — what a
    /// server or a simulator has to attend to after a step.
    pub fn connections_to_service(&self) -> Vec<ConnectionId> {
        self.connections
            .iter()
            .filter(|(_, conn)| !conn.out.is_empty() || conn.phase == Phase::Closed)
            .map(|(&c, _)| c)
            .collect()
    }

    /// Output bytes waiting for connection `c`.
    pub fn pending_output(&self, c: ConnectionId) -> usize {
        self.connections.get(&c).map_or(0, |conn| conn.out.len())
    }

    /// Whether the broker is done with connection `c` (closed by either side, refused, timed
    /// out, or unknown): write what [`poll_transmit`](Self::poll_transmit) still gives, then close
    /// the socket and call [`disconnect`](Self::disconnect).
    pub fn is_closed(&self, c: ConnectionId) -> bool {
        self.connections
            .get(&c)
            .is_none_or(|conn| conn.phase == Phase::Closed)
    }

    /// The socket of connection `c` is gone: requeue its unacknowledged messages, cancel its
    /// consumers, delete its exclusive queues, and forget it.
    pub fn disconnect(&mut self, c: ConnectionId, now: Instant) {
        let now = self.tick(now);
        self.release_connection(c);
        self.connections.remove(&c);
        self.run_dispatch(now);
    }

    /// Closes connection `c` from the broker's side with `connection.close(code, text)` —
    /// what RabbitMQ's management "close connection" does with 320 `CONNECTION_FORCED - …`. Its
    /// consumers are cancelled and unacknowledged messages requeued at once; the connection then
    /// waits for `close-ok`. Returns `false` when it was not open.
    ///
    /// `text` is the whole reply text (`"CONNECTION_FORCED - Closed via management plugin"`);
    /// longer than 255 bytes, it is cut as RabbitMQ cuts it.
    pub fn force_close(&mut self, c: ConnectionId, code: u16, text: &str) -> bool {
        let done = self.force(c, code, text);
        if let Some(now) = self.now {
            self.run_dispatch(now);
        }
        done
    }

    /// Restarts the broker as RabbitMQ restarts: every connection gets `connection.close 320
    /// CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'` and is closed
    /// (write out its last bytes, then disconnect it); non-durable queues and exchanges are gone
    /// (exclusive and auto-delete queues with them); durable queues keep their bindings and their
    /// persistent messages (`delivery_mode` 2) — the unacknowledged ones requeued and marked
    /// redelivered — while transient messages are lost, as on RabbitMQ. Virtual hosts remain.
    pub fn restart(&mut self, now: Instant) {
        let now = self.tick(now);
        let text = Self::shutdown_text();
        let ids: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for c in ids {
            self.send_connection_close(c, reply_code::CONNECTION_FORCED, &text, 0, 0);
            self.release_connection(c);
            if let Some(conn) = self.connections.get_mut(&c) {
                conn.phase = Phase::Closed;
            }
        }
        let transient: Vec<QueueId> = self
            .queues
            .iter()
            .filter(|(_, q)| !q.durable || q.exclusive_owner.is_some())
            .map(|(id, _)| *id)
            .collect();
        for q in transient {
            self.delete_queue(q);
        }
        for q in self.queues.values_mut() {
            q.keep_persistent();
        }
        for v in 0..self.vhosts.len() {
            let names: Vec<String> = self.vhosts[v]
                .exchanges
                .values()
                .filter(|x| !x.durable)
                .map(|x| x.name.clone())
                .collect();
            for name in names {
                self.delete_exchange(v, &name);
            }
        }
        self.dead.clear();
        self.run_dispatch(now);
    }

    /// The connection `c`, or a 541 for a method that reached a connection that is gone.
    pub(crate) fn conn_mut(&mut self, c: ConnectionId) -> Result<&mut Connection, AmqpError> {
        self.connections
            .get_mut(&c)
            .ok_or_else(|| AmqpError::internal("connection gone"))
    }

    /// Answers method `m` on channel `ch` of connection `c`, unless the client asked for `nowait`.
    pub(crate) fn write_reply(
        &mut self,
        c: ConnectionId,
        ch: u16,
        nowait: bool,
        m: AMQPClass,
    ) -> Result<(), AmqpError> {
        if !nowait {
            wire::method(&mut self.conn_mut(c)?.out, ch, &m);
        }
        Ok(())
    }

    /// The channel `ch` of connection `c`.
    pub(crate) fn channel_mut(
        &mut self,
        c: ConnectionId,
        ch: u16,
    ) -> Result<&mut channel::Channel, AmqpError> {
        self.conn_mut(c)?
            .channels
            .get_mut(&ch)
            .ok_or_else(|| AmqpError::internal("channel gone"))
    }

    /// The virtual host connection `c` opened.
    pub(crate) fn vhost_of(&self, c: ConnectionId) -> Result<usize, AmqpError> {
        self.connections
            .get(&c)
            .and_then(|conn| conn.vhost)
            .ok_or_else(|| AmqpError::internal("connection without a virtual host"))
    }

    /// Queues a queue for dispatch.
    pub(crate) fn mark_dirty(&mut self, q: QueueId) {
        if let Some(queue) = self.queues.get_mut(&q)
            && !queue.dirty
        {
            queue.dirty = true;
            self.dirty.push(q);
        }
    }
}
