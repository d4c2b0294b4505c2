//! The NuroPb endpoint: one participant on the mesh, as a state machine over an AMQP connection.

use crate::amqp::{self, ChannelId, Connection, ConnectionError};
use crate::crypto::{Encryptor, keys};
use crate::describe::ServiceDescription;
use crate::error::{ErrorKind, NuropbError};
use crate::mesh::backoff::Backoff;
use crate::mesh::client::{Pending, Queued};
use crate::mesh::config::EndpointConfig;
use crate::mesh::event::{Arrival, Event, RequestId, UnreadableMessage};
use crate::mesh::ids::IdGenerator;
use crate::mesh::service::{InFlight, Settlements};
use crate::mesh::{names, topology};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Where the endpoint is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The AMQP handshake is under way.
    Connecting,
    /// The channel is open and the queues and consumers are being set up.
    Starting,
    /// Serving and calling.
    Ready,
    /// The connection ended; waiting for [`Endpoint::reconnect`].
    Disconnected,
    /// Closing, on request or because of a permanent refusal.
    Closing,
    /// Done for good.
    Stopped,
}

/// One NuroPb participant — a service, or a client only — driven by its runtime adapter.
///
/// # Driving it
///
/// The endpoint owns an AMQP [`Connection`] and follows its rules, with time passed in:
///
/// 1. Make the endpoint with [`Endpoint::new`], open a socket to the broker.
/// 2. Whenever bytes arrive, [`Endpoint::handle_input`]; when the socket reaches end of file,
///    [`Endpoint::handle_eof`].
/// 3. After every input, timeout or command, write out [`Endpoint::poll_transmit`] and handle every
///    [`Endpoint::poll_event`]: run a handler for each [`Event::Call`] and [`Event::Incoming`]
///    and give its outcome to [`Endpoint::complete`]; wake the caller of each
///    [`Event::Response`].
/// 4. Sleep until [`Endpoint::poll_timeout`] at the latest, then [`Endpoint::handle_timeout`].
/// 5. On [`Event::Disconnected`], drop the socket, wait [`Endpoint::reconnect_delay`], open a new
///    one and call [`Endpoint::reconnect`]. On [`Event::Stopped`], stop.
///
/// Requests, commands and events may be sent at any time: until the endpoint is
/// [`Phase::Ready`] they wait in a bounded outbox, up to their deadline.
pub struct Endpoint {
    pub(crate) config: EndpointConfig,
    /// The response queue's name, made once.
    pub(crate) response_queue: String,
    pub(crate) amqp_config: amqp::Config,
    pub(crate) conn: Connection,
    pub(crate) phase: Phase,
    /// Counts connections and channels: deliveries of an earlier epoch are stale.
    pub(crate) epoch: u64,
    pub(crate) channel: Option<ChannelId>,
    /// Startup requests not yet answered.
    pub(crate) startup: HashSet<amqp::RequestId>,
    /// Whether the service consumer runs (until [`Endpoint::stop_consuming`]).
    pub(crate) serving: bool,
    /// Mesh configuration requests not yet answered; `Some` while one is under way.
    pub(crate) mesh_setup: Option<HashSet<amqp::RequestId>>,
    pub(crate) mesh_setup_wanted: bool,
    /// The error to report once the connection has closed, for a permanent refusal.
    pub(crate) stop_error: Option<NuropbError>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) ids: IdGenerator,
    pub(crate) next_request: u64,
    /// Requests waiting for a response, by correlation id.
    pub(crate) pending: HashMap<String, Pending>,
    /// Deadlines of pending requests, soonest first, with their correlation ids.
    pub(crate) deadlines: BTreeMap<(Instant, RequestId), String>,
    /// Messages waiting for the endpoint to be ready.
    pub(crate) outbox: VecDeque<Queued>,
    /// Encrypted requests waiting for the public key of their service, by service.
    pub(crate) awaiting_key: HashMap<String, Vec<crate::mesh::client::AwaitingKey>>,
    pub(crate) encryptor: Encryptor,
    pub(crate) public_key_pem: Option<String>,
    pub(crate) descriptions: HashMap<String, ServiceDescription>,
    /// Deliveries being handled, by delivery tag (of the current epoch).
    pub(crate) in_flight: HashMap<u64, InFlight>,
    pub(crate) settlements: Settlements,
    /// Wall-clock time (seconds since the epoch) at `clock_base`, for Fernet timestamps.
    pub(crate) clock_base: (Instant, u64),
    pub(crate) reconnects: u32,
    pub(crate) backoff: Backoff,
    /// Requests the endpoint made for itself (describes for a public key): no event of theirs.
    pub(crate) internal: HashSet<RequestId>,
    /// The latest time the driver gave.
    pub(crate) last_now: Instant,
    /// When the last connection on which the endpoint was ready went: until the broker's own
    /// heartbeat timer can have let that connection go, a refusal of this endpoint's exclusive
    /// queues and consumers is taken to be that connection's doing, not a twin's.
    pub(crate) ready_lost_at: Option<Instant>,
    /// Messages that could not be read, since the endpoint was made.
    pub(crate) unreadable: u64,
    /// When the endpoint last became ready: a connection lost sooner than
    /// [`Backoff::healthy`] after that is part of the same outage.
    pub(crate) ready_since: Option<Instant>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.config.name())
            .field("instance_id", &self.config.instance_id)
            .field("phase", &self.phase)
            .field("pending", &self.pending.len())
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint that connects with `amqp` (credentials, vhost, heartbeat) and behaves as
    /// `config` says. `unix_time` is the wall clock (seconds since 1970) at `now`.
    ///
    /// NuroPb's client properties (`name`, `instance_id`, `client_only`) are added to `amqp`.
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
        let conn = Connection::new(amqp.clone(), now).map_err(transport)?;
        let private_key = config.service.as_ref().and_then(|s| s.private_key.clone());
        let public_key_pem = match &private_key {
            Some(key) => Some(
                keys::public_key_to_pem(&key.to_public_key())
                    .map_err(|e| NuropbError::new(ErrorKind::Exception, e.to_string()))?,
            ),
            None => None,
        };
        Ok(Endpoint {
            response_queue: config.response_queue(),
            encryptor: Encryptor::new(private_key, config.key_store),
            public_key_pem,
            ids: IdGenerator::new(config.seed),
            mesh_setup_wanted: config.configure_mesh_on_connect,
            config,
            amqp_config: amqp,
            conn,
            phase: Phase::Connecting,
            epoch: 0,
            channel: None,
            startup: HashSet::new(),
            serving: false,
            mesh_setup: None,
            stop_error: None,
            events: VecDeque::new(),
            next_request: 0,
            pending: HashMap::new(),
            deadlines: BTreeMap::new(),
            outbox: VecDeque::new(),
            awaiting_key: HashMap::new(),
            descriptions: HashMap::new(),
            in_flight: HashMap::new(),
            settlements: Settlements::default(),
            clock_base: (now, unix_time),
            reconnects: 0,
            backoff: Backoff::default(),
            internal: HashSet::new(),
            last_now: now,
            ready_lost_at: None,
            unreadable: 0,
            ready_since: None,
        })
    }

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

    /// Sets the reconnect schedule.
    pub fn set_backoff(&mut self, backoff: Backoff) {
        self.backoff = backoff;
    }

    /// Feeds bytes from the socket.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.last_now = now;
        self.conn.handle_input(bytes, now);
        self.pump(now);
    }

    /// The socket reached end of file.
    pub fn handle_eof(&mut self, now: Instant) {
        self.last_now = now;
        self.conn.handle_eof(now);
        self.pump(now);
    }

    /// Appends the bytes to write to the socket to `buf`; returns how many. Settlements of
    /// deliveries handled since the last call go out here, contiguous acks as one.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> usize {
        if let Some(ch) = self.channel {
            self.settlements.flush(&mut self.conn, ch);
        }
        self.conn.poll_transmit(buf)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] is due: heartbeats, request deadlines, outbox expiry.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadlines = self.deadlines.first_key_value().map(|((at, _), _)| *at);
        let outbox = self.outbox.iter().map(|q| q.deadline).min();
        let waiting = self
            .awaiting_key
            .values()
            .flatten()
            .map(|a| a.deadline)
            .min();
        [self.conn.poll_timeout(), deadlines, outbox, waiting]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time has passed: sends heartbeats, detects a dead broker, expires requests.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.conn.handle_timeout(now);
        self.pump(now);
        self.expire(now);
    }

    /// How long to wait before [`Endpoint::reconnect`], given a `jitter` in `[0, 1]` from the
    /// adapter's randomness; grows with each attempt of the outage (see [`Backoff`]: a
    /// connection lost soon after it became ready does not start the schedule over).
    pub fn reconnect_delay(&self, jitter: f64) -> Duration {
        self.backoff.delay(self.reconnects, jitter)
    }

    /// Starts over on a new socket after [`Event::Disconnected`].
    pub fn reconnect(&mut self, now: Instant) -> Result<(), NuropbError> {
        if self.phase != Phase::Disconnected {
            return Err(NuropbError::new(
                ErrorKind::Transport,
                format!("cannot reconnect while {:?}", self.phase),
            ));
        }
        self.conn = Connection::new(self.amqp_config.clone(), now).map_err(transport)?;
        self.reconnects = self.reconnects.saturating_add(1);
        self.phase = Phase::Connecting;
        Ok(())
    }

    /// Declares the mesh's exchanges and dead-letter queue (idempotent); [`Event::MeshConfigured`]
    /// follows. Before the endpoint is connected, it happens as soon as it is.
    pub fn configure_mesh(&mut self) {
        self.mesh_setup_wanted = true;
        if matches!(self.phase, Phase::Starting | Phase::Ready) && self.mesh_setup.is_none() {
            self.start_mesh_setup();
        }
    }

    /// Stops taking new deliveries from the service queue (graceful shutdown): deliveries in
    /// flight may still be completed.
    pub fn stop_consuming(&mut self) {
        if let Some(ch) = self.channel
            && std::mem::take(&mut self.serving)
        {
            let _ = self.conn.basic_cancel(ch, names::SERVICE_CONSUMER, false);
        }
    }

    /// How many bytes wait for [`Endpoint::poll_transmit`] (settlements not yet written out
    /// aside): with what the adapter has taken but not yet written, the backlog a publisher faster
    /// than the socket builds up.
    pub fn pending_output(&self) -> usize {
        self.conn.pending_output()
    }

    /// How many messages wait for the connection (bounded by
    /// [`EndpointConfig::max_outbox`](crate::mesh::EndpointConfig::max_outbox)).
    pub fn waiting(&self) -> usize {
        self.outbox.len()
    }

    /// How many deliveries are being handled.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// How many requests wait for a response (including those waiting for the connection).
    pub fn pending_requests(&self) -> usize {
        self.pending.len() + self.awaiting_key.values().map(Vec::len).sum::<usize>()
    }

    /// How many messages could not be read since the endpoint was made (each also an
    /// [`Event::Unreadable`]).
    pub fn unreadable(&self) -> u64 {
        self.unreadable
    }

    /// How many messages wait for the connection.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// Closes the connection; [`Event::Stopped`] follows. Pending requests fail.
    pub fn close(&mut self) {
        if matches!(self.phase, Phase::Stopped | Phase::Closing) {
            return;
        }
        if let Some(ch) = self.channel {
            self.settlements.flush(&mut self.conn, ch);
        }
        if self.conn.close(200, "Normal shutdown").is_ok() {
            self.phase = Phase::Closing;
        } else {
            self.lose_connection(None);
            self.finish_stop(None);
        }
    }

    /// Seconds since 1970 at `now`, from the wall clock given at creation.
    pub(crate) fn unix_time(&self, now: Instant) -> u64 {
        self.clock_base.1 + now.saturating_duration_since(self.clock_base.0).as_secs()
    }

    pub(crate) fn next_request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// Handles every event the connection has.
    fn pump(&mut self, now: Instant) {
        while let Some(event) = self.conn.poll_event() {
            self.on_amqp_event(event, now);
        }
    }

    fn on_amqp_event(&mut self, event: amqp::Event, now: Instant) {
        match event {
            amqp::Event::Connected { .. } => self.open_channel(),
            amqp::Event::ChannelOpened { .. } => {}
            amqp::Event::ChannelClosed {
                channel,
                reply_code,
                reply_text,
                by_peer,
                ..
            } if Some(channel) == self.channel => {
                self.on_channel_closed(reply_code, reply_text, by_peer)
            }
            amqp::Event::ChannelClosed { .. } => {}
            amqp::Event::Completed {
                request, result, ..
            } => self.on_completed(request, result, now),
            amqp::Event::Delivery(delivery) => match delivery.consumer_tag.as_str() {
                names::RESPONSE_CONSUMER => self.on_response(delivery, now),
                names::SERVICE_CONSUMER => self.on_service_delivery(delivery, now),
                names::LISTEN_CONSUMER => self.on_listened(delivery),
                _ => {}
            },
            amqp::Event::Returned(returned) => self.on_returned(returned),
            amqp::Event::Unreadable(unreadable) => self.on_unreadable(*unreadable),
            amqp::Event::Confirmed { .. } | amqp::Event::Flow { .. } => {}
            amqp::Event::ConsumerCancelled { channel, .. } if Some(channel) == self.channel => {
                // A queue of ours went away (deleted by an operator): start the channel over,
                // which declares it again.
                if let Some(ch) = self.channel {
                    let _ = self
                        .conn
                        .close_channel(ch, 200, "consumer cancelled by broker");
                }
            }
            amqp::Event::ConsumerCancelled { .. } => {}
            amqp::Event::Blocked { .. } => self.events.push_back(Event::Blocked(true)),
            amqp::Event::Unblocked => self.events.push_back(Event::Blocked(false)),
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
        match origin {
            amqp::Origin::Delivery {
                consumer_tag,
                delivery_tag,
                ..
            } => {
                let arrival = match consumer_tag.as_str() {
                    names::SERVICE_CONSUMER => {
                        self.settlements.track(delivery_tag);
                        let kind = crate::mesh::client::nuropb_type(&properties);
                        return self.refuse_unreadable(
                            delivery_tag,
                            &properties,
                            kind,
                            error.into(),
                        );
                    }
                    names::RESPONSE_CONSUMER => {
                        let correlation_id =
                            properties.correlation_id.map(|c| c.as_str().to_owned());
                        return self.drop_response(correlation_id, error.to_string());
                    }
                    names::LISTEN_CONSUMER => Arrival::ListenQueue,
                    _ => return,
                };
                let correlation_id = properties.correlation_id.map(|c| c.as_str().to_owned());
                self.note_unreadable(arrival, correlation_id, error.to_string(), false);
            }
            amqp::Origin::Returned {
                reply_code,
                reply_text,
            } => {
                let correlation_id = properties
                    .correlation_id
                    .as_ref()
                    .map(|c| c.as_str().to_owned());
                self.note_unreadable(Arrival::Returned, correlation_id, error.to_string(), false);
                // Ours, returned: what could be read of it still says which request failed.
                self.on_returned(amqp::Returned {
                    channel,
                    reply_code,
                    reply_text,
                    exchange,
                    routing_key,
                    properties,
                    body: Vec::new(),
                });
            }
            // The endpoint fetches nothing with basic.get.
            _ => {}
        }
    }

    /// Counts an unreadable message and tells the adapter: [`Event::Unreadable`].
    pub(crate) fn note_unreadable(
        &mut self,
        arrival: Arrival,
        correlation_id: Option<String>,
        reason: String,
        answered: bool,
    ) {
        self.unreadable += 1;
        self.events.push_back(Event::Unreadable(UnreadableMessage {
            arrival,
            correlation_id,
            reason,
            answered,
        }));
    }

    fn open_channel(&mut self) {
        match self.conn.open_channel() {
            Ok(ch) => {
                self.epoch += 1;
                self.channel = Some(ch);
                self.phase = Phase::Starting;
                if self.mesh_setup_wanted {
                    self.start_mesh_setup();
                }
                self.start_startup(ch);
            }
            Err(e) => self.stop(transport(e)),
        }
    }

    /// Declares the response queue, the service queue and its bindings, sets the prefetch and
    /// starts the consumers, as Python NuroPb does (NUROPB-WIRE.md §2.2).
    fn start_startup(&mut self, ch: ChannelId) {
        let plan = topology::startup(&self.config);
        let mut requests = HashSet::new();
        let mut failed = None;
        for step in plan.steps {
            match step.issue(&mut self.conn, ch) {
                Ok(id) => {
                    requests.insert(id);
                    if matches!(step, topology::Step::ConsumeService(_)) {
                        self.serving = true;
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        self.startup = requests;
        if let Some(e) = failed {
            self.stop(transport(e));
        }
    }

    fn start_mesh_setup(&mut self) {
        let Some(ch) = self.channel else { return };
        let mut requests = HashSet::new();
        for step in topology::mesh(&self.config.names) {
            match step.issue(&mut self.conn, ch) {
                Ok(id) => {
                    requests.insert(id);
                }
                Err(e) => return self.stop(transport(e)),
            }
        }
        self.mesh_setup_wanted = false;
        self.mesh_setup = Some(requests);
    }

    fn on_completed(
        &mut self,
        request: amqp::RequestId,
        result: Result<amqp::Completion, amqp::RequestFailed>,
        now: Instant,
    ) {
        if result.is_err() {
            return; // the channel closed: handled with its ChannelClosed
        }
        if let Some(setup) = &mut self.mesh_setup
            && setup.remove(&request)
            && setup.is_empty()
        {
            self.mesh_setup = None;
            self.events.push_back(Event::MeshConfigured);
        }
        if self.startup.remove(&request) && self.startup.is_empty() && self.phase == Phase::Starting
        {
            self.phase = Phase::Ready;
            self.ready_since = Some(now);
            self.events.push_back(Event::Ready);
            self.flush_outbox(now);
        }
    }

    fn on_channel_closed(&mut self, reply_code: u16, reply_text: String, by_peer: bool) {
        use amqp::reply_code::{ACCESS_REFUSED, NOT_FOUND, PRECONDITION_FAILED, RESOURCE_LOCKED};
        self.channel = None;
        self.lose_channel(&format!("channel closed: {reply_code} {reply_text}"));
        let refused_while_starting = by_peer && self.phase == Phase::Starting;
        if !refused_while_starting {
            // Closed later (a publish to a missing exchange): start the channel over; the
            // request that caused it has failed. When the whole connection is going, its
            // Closed event follows instead.
            if matches!(self.phase, Phase::Starting | Phase::Ready) && self.conn.is_open() {
                self.open_channel();
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
        match reply_code {
            // An exclusive queue or consumer, soon after a lost connection: most likely that
            // connection still holds it — a socket that went silent (a partition, a NAT that
            // forgot it) is only let go when the broker's heartbeat timer gives up on it.
            ACCESS_REFUSED | RESOURCE_LOCKED if self.within_ghost_grace() => {
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

    /// Gives up on this connection and reconnects after the backoff: [`Event::Disconnected`].
    fn retry_later(&mut self, error: NuropbError) {
        // Politely: the broker may free this connection before the socket goes.
        let _ = self.conn.close(200, "Normal shutdown");
        self.phase = Phase::Disconnected;
        self.events.push_back(Event::Disconnected { error });
    }

    /// Whether a connection on which the endpoint was ready went so recently that the broker may
    /// not have let it go yet: within two of its heartbeat intervals (60 s when this endpoint
    /// asks for none — RabbitMQ's default) and half a minute.
    fn within_ghost_grace(&self) -> bool {
        let heartbeat = match self.amqp_config.heartbeat {
            0 => 60,
            h => u64::from(h),
        };
        let grace = Duration::from_secs(2 * heartbeat + 30);
        self.ready_lost_at
            .is_some_and(|lost| self.last_now.saturating_duration_since(lost) < grace)
    }

    fn on_closed(&mut self, reply_code: u16, reply_text: String, error: Option<ConnectionError>) {
        if self.phase == Phase::Disconnected {
            return; // given up on already, and said so
        }
        if self.phase == Phase::Ready {
            self.ready_lost_at = Some(self.last_now);
            // Ready long enough: this is a new outage, and its backoff starts over.
            if self.ready_since.is_some_and(|since| {
                self.last_now.saturating_duration_since(since) >= self.backoff.healthy
            }) {
                self.reconnects = 0;
            }
        }
        let was_closing = self.phase == Phase::Closing;
        self.channel = None;
        let reason = match &error {
            Some(e) => e.to_string(),
            None => format!("{reply_code} {reply_text}"),
        };
        self.lose_connection(Some(&reason));
        if was_closing {
            let error = self.stop_error.take();
            return self.finish_stop(error);
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
            self.phase = Phase::Disconnected;
            self.events.push_back(Event::Disconnected { error });
        }
    }

    /// The channel is gone: requests sent on it will get no response (the response queue is
    /// auto-delete), deliveries on it are requeued by the broker.
    fn lose_channel(&mut self, reason: &str) {
        self.epoch += 1;
        // The broker requeues these deliveries; whoever handles them again decrypts them again.
        for in_flight in std::mem::take(&mut self.in_flight).into_values() {
            in_flight.forget_key(&mut self.encryptor);
        }
        self.settlements.clear();
        self.startup.clear();
        self.serving = false;
        if self.mesh_setup.take().is_some() {
            self.mesh_setup_wanted = true;
        }
        self.fail_sent(reason);
    }

    fn lose_connection(&mut self, reason: Option<&str>) {
        self.lose_channel(reason.unwrap_or("connection closed"));
    }

    /// Closes the connection because of a permanent refusal; [`Event::Stopped`] follows.
    fn stop(&mut self, error: NuropbError) {
        if matches!(self.phase, Phase::Closing | Phase::Stopped) {
            return;
        }
        self.stop_error = Some(error.clone());
        if self.conn.close(200, "Normal shutdown").is_ok() {
            self.phase = Phase::Closing;
        } else {
            self.lose_connection(Some(&error.description));
            self.finish_stop(Some(error));
        }
    }

    fn finish_stop(&mut self, error: Option<NuropbError>) {
        self.phase = Phase::Stopped;
        let reason = error
            .as_ref()
            .map(|e| e.description.clone())
            .unwrap_or_else(|| "the endpoint was closed".to_owned());
        self.fail_all(&reason);
        self.events.push_back(Event::Stopped { error });
    }
}

/// A connection-level failure as a NuroPb error.
pub(crate) fn transport(e: impl std::fmt::Display) -> NuropbError {
    NuropbError::new(ErrorKind::Transport, e.to_string())
}
