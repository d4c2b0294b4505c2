//! The NuroPb endpoint: one participant on the mesh, as a state machine over AMQP connections.

use crate::amqp::{self, ChannelId, Connection, ConnectionError};
use crate::crypto::{Encryptor, keys};
use crate::describe::ServiceDescription;
use crate::error::{ErrorKind, NuropbError};
use crate::mesh::backoff::Backoff;
use crate::mesh::call::DeliveryId;
use crate::mesh::calls::{Calls, CallsConfig, OutgoingEvent, Request};
use crate::mesh::config::EndpointConfig;
use crate::mesh::cx::Cx;
use crate::mesh::footprint::Footprint;
use crate::mesh::lifecycle::{Lifecycle, Next};
use crate::mesh::names;
use crate::mesh::outcome::{EventSpec, Outcome};
use crate::mesh::output::{Arrival, Output, Outputs, RequestId};
use crate::mesh::random::CorrelationIds;
use crate::mesh::serving::{CompleteError, Serving};
use crate::mesh::session::Session;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the endpoint is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// A socket is being opened ([`Output::Connect`]) or the AMQP handshake is under way.
    Connecting,
    /// The channel is open and the queues and consumers are being set up.
    Starting,
    /// Serving and calling.
    Ready,
    /// The connection ended; the next [`Output::Connect`] comes when the backoff is over.
    Disconnected,
    /// Closing: shutting down, or because of a permanent refusal.
    Closing,
    /// Done for good.
    Stopped,
}

/// The wall clock at the time the endpoint was made, and the latest time given.
#[derive(Clone, Copy, Debug)]
struct Clock {
    base: Instant,
    unix: u64,
    last: Instant,
}

impl Clock {
    /// `now`, or the latest time given when `now` is earlier: time never goes back.
    fn tick(&mut self, now: Instant) -> Instant {
        self.last = self.last.max(now);
        self.last
    }

    /// Seconds since 1970 at the latest time given.
    fn unix(&self) -> u64 {
        self.unix + self.last.saturating_duration_since(self.base).as_secs()
    }
}

/// The parts of an endpoint, borrowed apart for one call.
struct Parts<'a> {
    calls: &'a mut Calls,
    serving: &'a mut Serving,
    cx: Cx<'a>,
}

/// One NuroPb participant — a service, or a client only — driven by its adapter.
///
/// It holds every decision of a participant's life on the mesh: which broker node to connect to
/// and when, the startup sequence, what a lost connection fails and what a reconnect redeclares,
/// the ack table, responses, deadlines, encryption, describe, a graceful shutdown. It never reads
/// a clock, sleeps, spawns or touches a socket: the adapter opens the sockets it asks for, moves
/// bytes and time in and out, and runs handlers.
///
/// The methods fall in four groups, as [`amqp::Connection`]'s do:
///
/// - **Handlers**: something happened outside — a socket asked for opened ([`connected`]) or
///   could not be opened ([`connect_failed`]), bytes arrived ([`handle_input`]), the socket
///   ended ([`handle_eof`]), a timer fired ([`handle_timeout`]).
/// - **Commands** (each takes `now`): the application wants something — [`request`],
///   [`command`], [`publish_event`], [`describe`], [`complete`] a handled delivery,
///   [`configure_mesh`], [`shutdown`]. They return at once; what they lead to comes out of the
///   polls. A command that is refused returns an error and changes nothing.
/// - **Polls**: what the driver must do now — [`poll_output`] (what to do or know, in order),
///   [`poll_transmit`] (bytes to write), [`poll_timeout`] (when to call back).
/// - **Getters** taking `&self`.
///
/// # Driving it
///
/// 1. Make it with [`Endpoint::new`]. Its first output is [`Output::Connect`].
/// 2. After **any** handler or command, drain [`poll_output`] until `None`, acting on each
///    output in order; then write what [`poll_transmit`] gives (one buffer, one write); then
///    (re)arm one timer for [`poll_timeout`]. Outputs first, then bytes: handlers completed
///    while draining add their acks to the same write.
///    - [`Output::Connect`]: open a socket to that node, then call [`connected`] or
///      [`connect_failed`] with the time.
///    - [`Output::Call`], [`Output::Incoming`]: run the handler; give its outcome to
///      [`complete`] (at once or later).
///    - [`Output::Response`]: wake the caller of that request.
///    - [`Output::Disconnected`]: flush [`poll_transmit`] and drop the socket; an
///      [`Output::Connect`] follows by itself.
///    - [`Output::Stopped`]: flush and drop the socket; it is the last output.
/// 3. Bytes from the socket go to [`handle_input`] in any chunking; end of file or a socket
///    error to [`handle_eof`]; the timer to [`handle_timeout`].
///
/// # Time
///
/// Every handler and command takes `now`, and time never goes back: an earlier `now` than one
/// given before counts as the later one. Bytes handed out by [`poll_transmit`] count as sent at
/// the latest time given.
///
/// # Bounds
///
/// Pending requests are capped by
/// [`EndpointConfig::max_pending_requests`], messages waiting for the connection by
/// [`EndpointConfig::max_outbox`] (past either, a command is refused); deliveries in flight by
/// the service's prefetch; keys kept for encrypted calls by
/// [`EndpointConfig::key_store`]; descriptions by the services described. The output queue
/// holds at most what one handler or command caused (a lost connection: one response per
/// pending request); the driver empties it each time. Input is bounded as
/// [`amqp::Connection`] bounds it. [`Endpoint::footprint`] shows every table's size.
///
/// # Peer errors
///
/// Nothing a broker or a publisher sends can make it panic or stop it for good: a message that
/// cannot be read is refused on its own ([`Output::Unreadable`]); a broker that breaks the
/// protocol loses its connection, and the endpoint connects again.
///
/// # Randomness
///
/// Correlation ids and reconnect jitter come from [`EndpointConfig::seed`]: the same seed and
/// inputs give the same outputs, except the bytes of encrypted messages (keys, IVs and padding
/// come from the OS).
///
/// [`connected`]: Endpoint::connected
/// [`connect_failed`]: Endpoint::connect_failed
/// [`handle_input`]: Endpoint::handle_input
/// [`handle_eof`]: Endpoint::handle_eof
/// [`handle_timeout`]: Endpoint::handle_timeout
/// [`request`]: Endpoint::request
/// [`command`]: Endpoint::command
/// [`publish_event`]: Endpoint::publish_event
/// [`describe`]: Endpoint::describe
/// [`complete`]: Endpoint::complete
/// [`configure_mesh`]: Endpoint::configure_mesh
/// [`shutdown`]: Endpoint::shutdown
/// [`poll_output`]: Endpoint::poll_output
/// [`poll_transmit`]: Endpoint::poll_transmit
/// [`poll_timeout`]: Endpoint::poll_timeout
///
/// # Example
///
/// ```
/// use nuropb_proto::amqp;
/// use nuropb_proto::mesh::{Endpoint, EndpointConfig, Output};
/// use std::time::{Duration, Instant};
///
/// let now = Instant::now();
/// let config = EndpointConfig::client("/", "a1", 7);
/// let mut endpoint = Endpoint::new(config, amqp::Config::new("guest", "guest", "/"), now, 0)?;
/// assert_eq!(endpoint.poll_output(), Some(Output::Connect { node: 0 }));
/// endpoint.connected(now); // the socket is open
/// let mut bytes = Vec::new();
/// endpoint.poll_transmit(&mut bytes);
/// assert_eq!(bytes, b"AMQP\x00\x00\x09\x01"); // write this to the socket
/// endpoint.shutdown(Duration::ZERO, now); // not ready yet: it closes at once
/// # Ok::<(), nuropb_proto::NuropbError>(())
/// ```
pub struct Endpoint {
    config: EndpointConfig,
    /// The AMQP settings each connection starts from.
    amqp: amqp::Config,
    response_queue: String,
    phase: Phase,
    /// The current connection and its channel.
    session: Option<Session>,
    /// A connection given up, whose last bytes (a polite close) the next
    /// [`Endpoint::poll_transmit`] flushes before the socket is dropped.
    leaving: Option<Session>,
    /// An [`Output::Connect`] waits for [`Endpoint::connected`] or [`Endpoint::connect_failed`].
    awaiting_socket: bool,
    life: Lifecycle,
    calls: Calls,
    serving: Serving,
    crypto: Encryptor,
    out: Outputs,
    ids: Arc<CorrelationIds>,
    clock: Clock,
    /// The mesh is to be configured on the next channel.
    mesh_wanted: bool,
    /// The error to report once the connection has closed, for a permanent refusal.
    stop_error: Option<NuropbError>,
    /// Until when handlers may finish, once a shutdown has begun.
    shutdown: Option<Instant>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.config.name())
            .field("instance_id", &self.config.instance_id)
            .field("phase", &self.phase)
            .field("pending", &self.calls.pending_requests())
            .field("in_flight", &self.serving.in_flight())
            .finish_non_exhaustive()
    }
}

/// A connection-level failure as a NuroPb error.
pub(crate) fn transport(e: impl std::fmt::Display) -> NuropbError {
    NuropbError::new(ErrorKind::Transport, e.to_string())
}

fn stopped() -> NuropbError {
    NuropbError::new(ErrorKind::Transport, "the endpoint has stopped")
}

impl Endpoint {
    /// An endpoint that behaves as `config` says and connects with `amqp` (credentials, vhost,
    /// heartbeat, limits). `unix_time` is the wall clock (seconds since 1970) at `now`.
    ///
    /// NuroPb's client properties (`name`, `instance_id`, `client_only`) are added to `amqp`.
    /// Its first output asks for a socket to the first of [`EndpointConfig::nodes`].
    pub fn new(
        config: EndpointConfig,
        amqp: amqp::Config,
        now: Instant,
        unix_time: u64,
    ) -> Result<Endpoint, NuropbError> {
        let amqp = amqp.nuropb_identity(
            config.name(),
            config.instance_id.clone(),
            config.service.is_none(),
        );
        // Refuse settings a connection would refuse, now rather than at each connect.
        Connection::new(amqp.clone(), now).map_err(transport)?;
        let private_key = config.service.as_ref().and_then(|s| s.private_key.clone());
        let public_key_pem = match &private_key {
            Some(key) => Some(
                keys::public_key_to_pem(&key.to_public_key())
                    .map_err(|e| NuropbError::new(ErrorKind::Exception, e.to_string()))?,
            ),
            None => None,
        };
        let response_queue = config.response_queue();
        let calls = Calls::new(CallsConfig {
            exchanges: config.names.exchanges.clone(),
            response_queue: response_queue.clone(),
            default_timeout: config.default_timeout,
            max_pending: config.max_pending_requests,
            max_outbox: config.max_outbox,
        });
        let serving = Serving::new(
            config.service.as_ref().map(|s| s.spec.clone()),
            public_key_pem,
            config.names.exchanges.clone(),
        );
        let life = Lifecycle::new(
            config.nodes.clone(),
            config.backoff,
            config.max_reconnects,
            config.seed,
        );
        let mut out = Outputs::default();
        out.push(Output::Connect {
            node: life.current(),
        });
        Ok(Endpoint {
            crypto: Encryptor::new(private_key, config.key_store),
            ids: Arc::new(CorrelationIds::new(config.seed)),
            mesh_wanted: config.configure_mesh_on_connect,
            response_queue,
            amqp,
            phase: Phase::Connecting,
            session: None,
            leaving: None,
            awaiting_socket: true,
            life,
            calls,
            serving,
            out,
            clock: Clock {
                base: now,
                unix: unix_time,
                last: now,
            },
            stop_error: None,
            shutdown: None,
            config,
        })
    }

    // ----- getters -----

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Where the endpoint is in its life.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The queue this participant's responses come back on.
    pub fn response_queue(&self) -> &str {
        &self.response_queue
    }

    /// The endpoint's correlation ids, for handles that need a command's or an event's id before
    /// the endpoint sees it: one generator for the whole participant.
    pub fn correlation_ids(&self) -> Arc<CorrelationIds> {
        self.ids.clone()
    }

    /// The last description of `service` received, if any (the one describe cache of the
    /// participant).
    pub fn description(&self, service: &str) -> Option<&ServiceDescription> {
        self.calls.description(service)
    }

    /// Whether `method` of `service` requires encryption, as far as a description says.
    pub fn requires_encryption(&self, service: &str, method: &str) -> Option<bool> {
        self.description(service)
            .map(|d| d.requires_encryption(method))
    }

    /// Whether the public key of `service` is known.
    pub fn has_public_key(&self, service: &str) -> bool {
        self.crypto.has_public_key(service)
    }

    /// How many bytes wait for [`Endpoint::poll_transmit`] (held-back acks aside): with what the
    /// adapter has taken but not yet written, the backlog a publisher faster than the socket
    /// builds up.
    pub fn pending_output(&self) -> usize {
        self.session.as_ref().map_or(0, |s| s.conn.pending_output())
    }

    /// How many messages wait for the connection (bounded by
    /// [`EndpointConfig::max_outbox`]).
    pub fn waiting(&self) -> usize {
        self.calls.waiting()
    }

    /// How many deliveries are being handled.
    pub fn in_flight(&self) -> usize {
        self.serving.in_flight()
    }

    /// How many requests wait for a response (including those waiting for the connection).
    pub fn pending_requests(&self) -> usize {
        self.calls.pending_requests()
    }

    /// How many messages could not be read since the endpoint was made (each also an
    /// [`Output::Unreadable`]).
    pub fn unreadable(&self) -> u64 {
        self.out.unreadable_count()
    }

    /// The sizes of the endpoint's internal tables.
    pub fn footprint(&self) -> Footprint {
        let (sent_keys, received_keys) = self.crypto.kept_keys();
        let calls = self.calls.sizes();
        Footprint {
            pending: calls.pending,
            deadlines: calls.deadlines,
            outbox: calls.outbox,
            awaiting_key: calls.awaiting_key,
            internal: calls.internal,
            in_flight: self.serving.in_flight(),
            unsettled: self.serving.unsettled(),
            sent_keys,
            received_keys,
            descriptions: calls.descriptions,
            events: self.out.len(),
        }
    }

    /// Sets the reconnect schedule (also [`EndpointConfig::backoff`]).
    pub fn set_backoff(&mut self, backoff: Backoff) {
        self.life.set_backoff(backoff);
    }

    fn parts(&mut self) -> Parts<'_> {
        let ready = self.phase == Phase::Ready;
        let unix = self.clock.unix();
        Parts {
            calls: &mut self.calls,
            serving: &mut self.serving,
            cx: Cx {
                session: self.session.as_mut(),
                ready,
                crypto: &mut self.crypto,
                out: &mut self.out,
                ids: &self.ids,
                now: self.clock.last,
                unix,
            },
        }
    }

    fn refuses_commands(&self) -> bool {
        matches!(self.phase, Phase::Stopped | Phase::Closing) || self.shutdown.is_some()
    }

    // ----- polls -----

    /// The next output, if any; drain them all after every handler and command.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop()
    }

    /// Appends the bytes to write to the socket to `buf`; returns how many. Acks of deliveries
    /// handled since the last call go out here, contiguous ones as one.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        if let Some(mut leaving) = self.leaving.take() {
            // The last bytes for the socket being dropped, alone.
            return leaving.conn.poll_transmit(buf);
        }
        let mut p = self.parts();
        p.serving.flush(&mut p.cx);
        match &mut self.session {
            Some(session) => session.conn.poll_transmit(buf),
            None => 0,
        }
    }

    /// When [`Endpoint::handle_timeout`] is due: heartbeats, request deadlines, outbox expiry,
    /// the reconnect, the end of a shutdown's grace.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.session.as_ref().and_then(|s| s.conn.poll_timeout()),
            self.calls.poll_timeout(),
            self.life.poll_timeout(),
            self.shutdown.filter(|_| self.phase != Phase::Closing),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- handlers -----

    /// The socket asked for by the last [`Output::Connect`] is open: the AMQP handshake begins
    /// (its bytes are ready in [`Endpoint::poll_transmit`]).
    pub fn connected(&mut self, now: Instant) {
        let now = self.clock.tick(now);
        if !std::mem::take(&mut self.awaiting_socket) {
            return;
        }
        // Whatever the old socket did not take is lost with it.
        self.leaving = None;
        match Connection::new(self.amqp.clone(), now) {
            Ok(conn) => self.session = Some(Session::new(conn)),
            Err(e) => self.finish_stop(Some(transport(e))),
        }
    }

    /// The socket asked for by the last [`Output::Connect`] could not be opened, for `reason`.
    pub fn connect_failed(&mut self, reason: impl std::fmt::Display, now: Instant) {
        self.clock.tick(now);
        if !std::mem::take(&mut self.awaiting_socket) {
            return;
        }
        if self.shutdown.is_some() {
            return self.finish_stop(None);
        }
        self.lost(
            NuropbError::new(ErrorKind::Transport, reason.to_string()),
            false,
        );
    }

    /// Feeds bytes from the socket.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        let now = self.clock.tick(now);
        if let Some(session) = &mut self.session {
            session.conn.handle_input(bytes, now);
            self.pump();
        }
    }

    /// The socket reached end of file, or failed.
    pub fn handle_eof(&mut self, now: Instant) {
        let now = self.clock.tick(now);
        if let Some(session) = &mut self.session {
            session.conn.handle_eof(now);
            self.pump();
        }
    }

    /// Time has passed: heartbeats, a dead broker found out, deadlines, the reconnect, the end of
    /// a shutdown's grace.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.clock.tick(now);
        if let Some(session) = &mut self.session {
            session.conn.handle_timeout(now);
            self.pump();
        }
        let mut p = self.parts();
        p.calls.expire(&mut p.cx);
        if let Some(node) = self.life.due(now) {
            self.connect_to(node);
        }
        self.close_when_done();
    }

    // ----- commands -----

    /// Sends a request; its [`Output::Response`] comes with the returned id, by its deadline.
    ///
    /// An encrypted request to a service whose public key is not known yet describes the service
    /// first. Refused at once when the endpoint is shutting down or stopped, when too many
    /// requests are pending, or when a name is too long.
    pub fn request(&mut self, request: Request, now: Instant) -> Result<RequestId, NuropbError> {
        self.clock.tick(now);
        if self.refuses_commands() {
            return Err(stopped());
        }
        let mut p = self.parts();
        p.calls.request(request, &mut p.cx)
    }

    /// Sends a command (no response); returns its correlation id. An unroutable command comes
    /// back as [`Output::NotDelivered`].
    pub fn command(&mut self, request: Request, now: Instant) -> Result<String, NuropbError> {
        self.clock.tick(now);
        if self.refuses_commands() {
            return Err(stopped());
        }
        let mut p = self.parts();
        p.calls.command(request, &mut p.cx)
    }

    /// Publishes an event; returns its correlation id.
    pub fn publish_event(
        &mut self,
        event: OutgoingEvent,
        now: Instant,
    ) -> Result<String, NuropbError> {
        self.clock.tick(now);
        if self.refuses_commands() {
            return Err(stopped());
        }
        let mut p = self.parts();
        p.calls.publish_event(event, &mut p.cx)
    }

    /// Asks `service` to describe itself; the [`Output::Response`] carries the description, which
    /// is also kept (see [`Endpoint::description`]) with its public key.
    pub fn describe(&mut self, service: &str, now: Instant) -> Result<RequestId, NuropbError> {
        self.clock.tick(now);
        if self.refuses_commands() {
            return Err(stopped());
        }
        let mut p = self.parts();
        p.calls.describe(service, &mut p.cx)
    }

    /// Finishes a delivery handed out as [`Output::Call`] or [`Output::Incoming`]: settles it and
    /// sends the response and events `outcome` calls for (see [`Outcome`]). `events` are those the
    /// handler added through its call context: published after success, dropped otherwise.
    pub fn complete(
        &mut self,
        delivery: DeliveryId,
        outcome: Outcome,
        events: Vec<EventSpec>,
        now: Instant,
    ) -> Result<(), CompleteError> {
        self.clock.tick(now);
        let mut p = self.parts();
        let done = p.serving.complete(delivery, outcome, events, &mut p.cx);
        self.close_when_done();
        done
    }

    /// Declares the mesh's exchanges and dead-letter queue (idempotent); [`Output::MeshConfigured`]
    /// follows. Before the endpoint is connected, it happens as soon as it is.
    pub fn configure_mesh(&mut self, now: Instant) {
        self.clock.tick(now);
        self.mesh_wanted = true;
        if matches!(self.phase, Phase::Starting | Phase::Ready)
            && let Some(session) = &mut self.session
        {
            match session.configure_mesh(&self.config.names) {
                Ok(true) => self.mesh_wanted = false,
                Ok(false) => {}
                Err(e) => self.stop(transport(e)),
            }
        }
    }

    /// Shuts the endpoint down: it stops taking new deliveries at once, lets the handlers of
    /// deliveries in flight finish within `grace`, then sends what did not finish back to the
    /// queue (requeued, for another instance), closes the connection and stops
    /// ([`Output::Stopped`]). Requests still pending fail. Offline, it stops at once. New
    /// requests, commands and events are refused from now on.
    pub fn shutdown(&mut self, grace: Duration, now: Instant) {
        let now = self.clock.tick(now);
        if matches!(self.phase, Phase::Stopped | Phase::Closing) {
            return;
        }
        let deadline = now + grace;
        self.shutdown = Some(self.shutdown.map_or(deadline, |d| d.min(deadline)));
        match (self.phase, &mut self.session) {
            (Phase::Starting | Phase::Ready, Some(session)) => session.stop_consuming(),
            (Phase::Connecting, Some(_)) => {}
            _ => return self.finish_stop(None),
        }
        self.close_when_done();
    }

    /// Closes a shutting-down endpoint once its handlers are done or their grace is over.
    fn close_when_done(&mut self) {
        let Some(deadline) = self.shutdown else {
            return;
        };
        if matches!(self.phase, Phase::Closing | Phase::Stopped) {
            return;
        }
        if self.serving.in_flight() > 0 && deadline > self.clock.last {
            return;
        }
        let mut p = self.parts();
        p.serving.requeue_all(&mut p.cx);
        self.close_connection(None);
    }

    /// Closes the connection politely; the endpoint stops with `error` once it is closed.
    fn close_connection(&mut self, error: Option<NuropbError>) {
        self.stop_error = error;
        let now = self.clock.last;
        let closing = self
            .session
            .as_mut()
            .is_some_and(|s| s.conn.close(200, "Normal shutdown", now).is_ok());
        if closing {
            self.phase = Phase::Closing;
        } else {
            let error = self.stop_error.take();
            let reason = error
                .as_ref()
                .map_or("the endpoint was closed".to_owned(), |e| {
                    e.description.clone()
                });
            self.lose_channel(&reason);
            self.finish_stop(error);
        }
    }

    // ----- what the connection says -----

    /// Handles every event the connection has.
    fn pump(&mut self) {
        while let Some(event) = self.session.as_mut().and_then(|s| s.conn.poll_event()) {
            self.on_amqp_event(event);
        }
    }

    fn our_channel(&self, channel: ChannelId) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.channel == Some(channel))
    }

    fn on_amqp_event(&mut self, event: amqp::Event) {
        if self.phase == Phase::Stopped {
            return;
        }
        match event {
            amqp::Event::Connected { .. } => self.start_channel(),
            amqp::Event::ChannelOpened { .. } => {}
            amqp::Event::ChannelClosed {
                channel,
                reply_code,
                reply_text,
                by_peer,
                ..
            } if self.our_channel(channel) => {
                self.on_channel_closed(reply_code, reply_text, by_peer)
            }
            amqp::Event::ChannelClosed { .. } => {}
            amqp::Event::Completed { id, result, .. } => self.on_completed(id, result),
            amqp::Event::Delivery(delivery) => {
                let mut p = self.parts();
                match delivery.consumer_tag.as_str() {
                    names::RESPONSE_CONSUMER => p.calls.on_response(delivery, &mut p.cx),
                    names::SERVICE_CONSUMER => p.serving.on_delivery(delivery, &mut p.cx),
                    names::LISTEN_CONSUMER => p.serving.on_listened(delivery, &mut p.cx),
                    _ => {}
                }
            }
            amqp::Event::Returned(returned) => {
                let mut p = self.parts();
                p.calls.on_returned(&returned, &mut p.cx);
            }
            amqp::Event::Unreadable(unreadable) => self.on_unreadable(*unreadable),
            amqp::Event::Confirmed { .. } | amqp::Event::Flow { .. } => {}
            amqp::Event::ConsumerCancelled { channel, .. } if self.our_channel(channel) => {
                // A queue of ours went away (deleted by an operator): start the channel over,
                // which declares it again.
                if let Some(session) = &mut self.session {
                    let _ =
                        session
                            .conn
                            .close_channel(channel, 200, "consumer cancelled by broker");
                }
            }
            amqp::Event::ConsumerCancelled { .. } => {}
            amqp::Event::Blocked { .. } => self.out.push(Output::Blocked(true)),
            amqp::Event::Unblocked => self.out.push(Output::Blocked(false)),
            amqp::Event::Closed {
                reply_code,
                reply_text,
                error,
                ..
            } => self.on_closed(reply_code, reply_text, error),
        }
    }

    /// A message whose content could not be read: the service queue's is refused and answered,
    /// a returned one is taken for what could be read of it, the others are dropped.
    fn on_unreadable(&mut self, unreadable: amqp::Unreadable) {
        let amqp::Unreadable {
            channel,
            origin,
            exchange,
            routing_key,
            properties,
            error,
            ..
        } = unreadable;
        let mut p = self.parts();
        match origin {
            amqp::Origin::Delivery {
                consumer_tag,
                delivery_tag,
                ..
            } => {
                let correlation_id = properties
                    .correlation_id
                    .as_ref()
                    .map(|c| c.as_str().to_owned());
                match consumer_tag.as_str() {
                    names::SERVICE_CONSUMER => {
                        p.serving
                            .on_unreadable(delivery_tag, &properties, error, &mut p.cx)
                    }
                    names::RESPONSE_CONSUMER => {
                        p.calls
                            .drop_response(correlation_id, error.to_string(), &mut p.cx)
                    }
                    names::LISTEN_CONSUMER => p.cx.out.unreadable(
                        Arrival::ListenQueue,
                        correlation_id,
                        error.to_string(),
                        false,
                    ),
                    _ => {}
                }
            }
            amqp::Origin::Returned {
                reply_code,
                reply_text,
            } => {
                let correlation_id = properties
                    .correlation_id
                    .as_ref()
                    .map(|c| c.as_str().to_owned());
                p.cx.out
                    .unreadable(Arrival::Returned, correlation_id, error.to_string(), false);
                // Ours, returned: what could be read of it still says which request failed.
                let returned = amqp::Returned {
                    channel,
                    reply_code,
                    reply_text,
                    exchange,
                    routing_key,
                    properties,
                    body: Vec::new(),
                };
                p.calls.on_returned(&returned, &mut p.cx);
            }
            // The endpoint fetches nothing with basic.get.
            _ => {}
        }
    }

    /// Opens the endpoint's channel on a new connection (or again on the same one) and starts
    /// its startup sequence.
    fn start_channel(&mut self) {
        let Some(session) = &mut self.session else {
            return;
        };
        match session.start(&self.config, self.mesh_wanted) {
            Ok(_) => {
                if self.mesh_wanted {
                    self.mesh_wanted = false;
                }
                self.serving.new_channel();
                self.phase = Phase::Starting;
            }
            Err(e) => self.stop(transport(e)),
        }
    }

    fn on_completed(
        &mut self,
        id: amqp::SyncId,
        result: Result<amqp::Completion, amqp::SyncFailed>,
    ) {
        if result.is_err() {
            return; // the channel closed: handled with its ChannelClosed
        }
        let Some(session) = &mut self.session else {
            return;
        };
        let finished = session.answered(id);
        if finished.mesh {
            self.out.push(Output::MeshConfigured);
        }
        if finished.startup && self.phase == Phase::Starting {
            self.phase = Phase::Ready;
            self.life.ready(self.clock.last);
            self.out.push(Output::Ready);
            let mut p = self.parts();
            p.calls.flush(&mut p.cx);
            // A shutdown that began while starting: nothing is in flight yet.
            self.close_when_done();
        }
    }

    fn on_channel_closed(&mut self, reply_code: u16, reply_text: String, by_peer: bool) {
        use amqp::reply_code::{ACCESS_REFUSED, NOT_FOUND, PRECONDITION_FAILED, RESOURCE_LOCKED};
        let refused_while_starting = by_peer && self.phase == Phase::Starting;
        self.lose_channel(&format!("channel closed: {reply_code} {reply_text}"));
        if !refused_while_starting {
            // Closed later (a publish to a missing exchange): start the channel over; the
            // request that caused it has failed. When the whole connection is going, its
            // Closed event follows instead.
            let open = self.session.as_ref().is_some_and(|s| s.conn.is_open());
            if matches!(self.phase, Phase::Starting | Phase::Ready) && open {
                if self.shutdown.is_some() {
                    return self.close_connection(None);
                }
                self.start_channel();
            }
            return;
        }
        let why = format!("{reply_code} {reply_text}");
        let refused = |hint: &str| {
            NuropbError::new(
                ErrorKind::Transport,
                format!("the broker refused the endpoint: {why}{hint}"),
            )
        };
        let heartbeat = self.amqp.heartbeat;
        match reply_code {
            // An exclusive queue or consumer, soon after a lost connection: most likely that
            // connection still holds it — a socket that went silent (a partition, a NAT that
            // forgot it) is only let go when the broker's heartbeat timer gives up on it.
            ACCESS_REFUSED | RESOURCE_LOCKED
                if self.life.within_ghost_grace(heartbeat, self.clock.last) =>
            {
                self.retry_later(NuropbError::new(
                    ErrorKind::Transport,
                    format!("the broker still holds this endpoint's previous connection: {why}"),
                ));
            }
            // Refused in a way that starting over cannot change: a second single instance,
            // an unconfigured mesh.
            ACCESS_REFUSED | RESOURCE_LOCKED => self.stop(refused("")),
            NOT_FOUND => self.stop(refused(" (is the mesh configured? see configure_mesh)")),
            // Anything else while setting up — a queue declared otherwise by another
            // participant, a limit of the virtual host — may be put right by an operator, but
            // starting over at once would only repeat it: after the backoff.
            PRECONDITION_FAILED => self.retry_later(refused(
                " (declared otherwise by another participant? every participant needs the same \
                 mesh names and queue arguments)",
            )),
            _ => self.retry_later(refused("")),
        }
    }

    /// Gives up on this connection (closing it politely: the broker may free it before the
    /// socket goes) and goes on as the lifecycle says.
    fn retry_later(&mut self, error: NuropbError) {
        let now = self.clock.last;
        if let Some(session) = &mut self.session {
            let _ = session.conn.close(200, "Normal shutdown", now);
        }
        if self.shutdown.is_some() {
            return self.finish_stop(None);
        }
        self.lost(error, true);
    }

    fn on_closed(&mut self, reply_code: u16, reply_text: String, error: Option<ConnectionError>) {
        let was_closing = self.phase == Phase::Closing;
        let reason = match &error {
            Some(e) => e.to_string(),
            None => format!("{reply_code} {reply_text}"),
        };
        self.lose_channel(&reason);
        if was_closing {
            let error = self.stop_error.take();
            return self.finish_stop(error);
        }
        if self.shutdown.is_some() {
            return self.finish_stop(None);
        }
        let permanent = matches!(
            error,
            Some(
                ConnectionError::AuthenticationFailed { .. }
                    | ConnectionError::VhostNotAllowed { .. }
                    | ConnectionError::UnsupportedProtocol(_)
                    | ConnectionError::NoPlainMechanism(_)
            )
        );
        let error = NuropbError::new(ErrorKind::Transport, format!("connection lost: {reason}"));
        if permanent {
            self.finish_stop(Some(error));
        } else {
            self.lost(error, true);
        }
    }

    /// The connection to the current node is over (or never was): disconnected, and connecting
    /// again when the lifecycle says, or stopped.
    fn lost(&mut self, error: NuropbError, opened: bool) {
        let next = self.life.lost(&error.description, opened, self.clock.last);
        if let Some(session) = self.session.take() {
            self.leaving = Some(session);
        }
        match next {
            Next::Connect(node) => {
                self.phase = Phase::Disconnected;
                self.out.push(Output::Disconnected {
                    error,
                    reconnect_in: Duration::ZERO,
                });
                self.connect_to(node);
            }
            Next::After(reconnect_in) => {
                self.phase = Phase::Disconnected;
                self.out.push(Output::Disconnected {
                    error,
                    reconnect_in,
                });
            }
            Next::Stop(error) => self.finish_stop(Some(error)),
        }
    }

    /// Asks for a socket to `node`.
    fn connect_to(&mut self, node: usize) {
        self.phase = Phase::Connecting;
        self.awaiting_socket = true;
        self.out.push(Output::Connect { node });
    }

    /// The channel is gone: requests sent on it will get no response (the response queue is
    /// auto-delete), deliveries on it are requeued by the broker.
    fn lose_channel(&mut self, reason: &str) {
        let mesh_was_running = self.session.as_mut().is_some_and(|s| s.lose_channel());
        if mesh_was_running {
            self.mesh_wanted = true;
        }
        let mut p = self.parts();
        p.serving.lose_channel(&mut p.cx);
        p.calls.fail_sent(reason, &mut p.cx);
    }

    /// Closes the connection because of a permanent refusal; [`Output::Stopped`] follows.
    fn stop(&mut self, error: NuropbError) {
        if matches!(self.phase, Phase::Closing | Phase::Stopped) {
            return;
        }
        self.close_connection(Some(error));
    }

    fn finish_stop(&mut self, error: Option<NuropbError>) {
        self.phase = Phase::Stopped;
        self.awaiting_socket = false;
        self.life.cancel();
        self.shutdown = None;
        let reason = error
            .as_ref()
            .map(|e| e.description.clone())
            .unwrap_or_else(|| "the endpoint was closed".to_owned());
        let mut p = self.parts();
        p.calls.fail_all(&reason, &mut p.cx);
        self.out.push(Output::Stopped { error });
    }
}
