//! The WebSocket at `/websocket`: the upgrade (origin, token, limits), then one task per socket
//! that reads frames, writes replies and events from its bounded queue, and closes the socket
//! when its token expires (code 4001), when its client does not read (1008), or when a message
//! is too large to read past (1009).

use crate::auth::{self, PROTOCOL};
use crate::error::Refusal;
use crate::events::{Closer, Outbound, SLOW_READER, Subscriber};
use crate::frames::{self, Bad, Frame, Inbound};
use crate::http::{Peer, refusal_response};
use crate::metrics::Reason;
use crate::state::{Caller, Shared};
use crate::topic;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, SinkExt};
use nuropb_tokio::ErrorKind;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Close code: the token expired, or none was given in time.
pub const CLOSE_EXPIRED: u16 = 4001;
/// Close code: a message too large to read past (RFC 6455's "message too big").
const CLOSE_TOO_BIG: u16 = 1009;

/// `GET /websocket`.
pub(crate) async fn upgrade(
    State(gw): State<Arc<Shared>>,
    Peer(address): Peer,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(why) = gw.origins.check(&headers) {
        gw.metrics.refused(Reason::Origin);
        return refusal_response(Refusal::new(
            StatusCode::FORBIDDEN,
            ErrorKind::Authorization,
            why,
        ));
    }
    if let Err(refusal) = gw.room() {
        return refusal_response(refusal);
    }
    let token = match auth::token_of(&headers) {
        Ok(token) => token.map(|(t, _)| t),
        Err(refusal) => return refusal_response(refusal),
    };
    // Without a token, a socket may still authenticate with its first frame.
    let caller = if token.is_some() || gw.anonymous {
        match gw.identify(token, &address).await {
            Ok(caller) => Some(caller),
            Err(refusal) => return refusal_response(refusal),
        }
    } else {
        None
    };
    let hard = gw.limits.max_frame_bytes.saturating_mul(4).max(64 * 1024);
    ws.protocols([PROTOCOL])
        .read_buffer_size(4096)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(hard.saturating_mul(2))
        .max_message_size(hard)
        .max_frame_size(hard)
        .on_upgrade(move |socket| serve(socket, gw, caller, address))
}

/// One socket's state.
struct Socket {
    gw: Arc<Shared>,
    id: u64,
    session_id: String,
    caller: Option<Arc<Caller>>,
    address: String,
    outbox: mpsc::Sender<Outbound>,
    closer: Arc<Closer>,
    /// The socket's requests, commands and describes in flight: polled by the socket's task,
    /// which writes each reply as it comes.
    in_flight: FuturesUnordered<nuropb_tokio::BoxFuture<Utf8Bytes>>,
    subscriptions: Vec<String>,
    opened: Instant,
}

async fn serve(mut ws: WebSocket, gw: Arc<Shared>, caller: Option<Caller>, address: String) {
    let (outbox, mut rx) = mpsc::channel(gw.limits.outbound_queue.max(1));
    let mut socket = Socket {
        id: gw.client_id(),
        session_id: nuropb_tokio::random_hex(),
        in_flight: FuturesUnordered::new(),
        gw,
        caller: caller.map(Arc::new),
        address,
        outbox,
        closer: Arc::default(),
        subscriptions: Vec::new(),
        opened: Instant::now(),
    };
    socket.gw.metrics.sockets(1);
    if socket.caller.is_some() {
        socket.hello();
    }
    let mut deadline = socket.deadline();
    let timer = tokio::time::sleep_until(deadline);
    tokio::pin!(timer);
    loop {
        tokio::select! {
            biased;
            code = socket.closer.closed() => {
                let reason = match code {
                    SLOW_READER => {
                        socket.gw.metrics.refused(Reason::SlowReader);
                        "the client does not read its messages"
                    }
                    CLOSE_TOO_BIG => "the message is too large",
                    _ => "closed by the gateway",
                };
                close(&mut ws, code, reason).await;
                break;
            }
            () = &mut timer => {
                socket.gw.metrics.refused(Reason::Expired);
                let reason = if socket.caller.is_some() { "the token has expired" } else { "no token was given in time" };
                close(&mut ws, CLOSE_EXPIRED, reason).await;
                break;
            }
            Some(out) = rx.recv() => {
                if write(&mut ws, out, &mut rx, socket.gw.limits.write_timeout).await.is_err() {
                    break;
                }
            }
            Some(reply) = socket.in_flight.next(), if !socket.in_flight.is_empty() => {
                let reply = Outbound::Frame(reply);
                if write(&mut ws, reply, &mut rx, socket.gw.limits.write_timeout).await.is_err() {
                    break;
                }
            }
            message = ws.recv() => {
                match message {
                    Some(Ok(message)) => socket.on_message(message).await,
                    Some(Err(e)) => {
                        if is_capacity(&e) {
                            socket.gw.metrics.refused(Reason::Oversize);
                            close(&mut ws, CLOSE_TOO_BIG, "the message is too large to read").await;
                        }
                        break;
                    }
                    None => break,
                }
                let now = socket.deadline();
                if now != deadline {
                    deadline = now;
                    timer.as_mut().reset(deadline);
                }
            }
        }
    }
    for pattern in &socket.subscriptions {
        socket.gw.hub.unsubscribe(pattern, socket.id);
    }
    socket.gw.metrics.sockets(-1);
}

/// Whether a read failed on a message over the hard size limit.
fn is_capacity(error: &axum::Error) -> bool {
    let text = error.to_string();
    text.contains("Space limit exceeded") || text.contains("too long") || text.contains("Capacity")
}

/// Writes `first` and whatever else waits (up to 64 frames), then flushes, within `timeout`.
async fn write(
    ws: &mut WebSocket,
    first: Outbound,
    rx: &mut mpsc::Receiver<Outbound>,
    timeout: Duration,
) -> Result<(), ()> {
    let message = |out: Outbound| match out {
        Outbound::Frame(text) => Message::Text(text),
        Outbound::Event(event) => Message::Text(event.frame.clone()),
    };
    let batch = async {
        ws.feed(message(first)).await?;
        for _ in 0..63 {
            match rx.try_recv() {
                Ok(out) => ws.feed(message(out)).await?,
                Err(_) => break,
            }
        }
        ws.flush().await
    };
    // Most writes complete at once: a timer only for those that wait on the client.
    let mut batch = std::pin::pin!(batch);
    if let Some(done) = batch.as_mut().now_or_never() {
        return done.map_err(|_| ());
    }
    match tokio::time::timeout(timeout, batch).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Sends a close frame with `code`, giving up after a second.
async fn close(ws: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.send(frame)).await;
}

fn instant_of(at: SystemTime) -> Instant {
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    Instant::now() + left
}

impl Socket {
    /// When the socket is to be closed: its token's expiry; the end of the time to authenticate
    /// when it has no caller yet; else far away.
    fn deadline(&self) -> Instant {
        match &self.caller {
            Some(caller) => caller
                .identity
                .expires_at
                .map(instant_of)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365)),
            None => self.opened + self.gw.limits.authenticate_within,
        }
    }

    /// Queues a frame; a full queue closes the socket.
    fn push(&self, frame: Utf8Bytes) {
        if self.outbox.try_send(Outbound::Frame(frame)).is_err() {
            self.closer.close(SLOW_READER);
        }
    }

    fn refuse(&self, id: Option<&Value>, trace_id: Option<&str>, request: bool, refusal: Refusal) {
        let frame = match (request, trace_id) {
            (true, Some(trace_id)) => frames::response(id, trace_id, &Err(refusal.error)),
            _ => frames::error(id, trace_id, &refusal.error),
        };
        self.push(frame);
    }

    fn hello(&self) {
        let identity = self.caller.as_ref().map(|c| &c.identity);
        self.push(frames::reply(
            "event",
            None,
            json!({"topic": "hello", "event": {
                "session_id": self.session_id,
                "user_id": identity.and_then(|i| i.user_id.clone()),
                "username": identity.and_then(|i| i.username.clone().or_else(|| i.user_id.clone())),
            }}),
        ));
    }

    async fn on_message(&mut self, message: Message) {
        match message {
            Message::Text(text) => self.on_text(text.as_str()).await,
            Message::Binary(bytes) => match std::str::from_utf8(&bytes) {
                Ok(text) => self.on_text(text).await,
                Err(_) => {
                    self.gw.metrics.refused(Reason::BadFrame);
                    self.refuse(
                        None,
                        None,
                        false,
                        Refusal::message(
                            StatusCode::BAD_REQUEST,
                            "a binary frame must hold UTF-8 JSON",
                        ),
                    );
                }
            },
            // Pings are answered by the WebSocket layer; a close ends the read loop.
            _ => {}
        }
    }

    async fn on_text(&mut self, text: &str) {
        let max = self.gw.limits.max_frame_bytes;
        if text.len() > max {
            self.gw.metrics.refused(Reason::Oversize);
            let refusal = Refusal::message(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the frame is {} bytes; the gateway takes at most {max}",
                    text.len()
                ),
            );
            return self.refuse(None, None, false, refusal);
        }
        match frames::parse(text) {
            Ok(frame) => self.on_frame(frame).await,
            Err(bad) => {
                let Bad {
                    id,
                    trace_id,
                    refusal,
                    request,
                } = *bad;
                self.gw.metrics.refused(Reason::BadFrame);
                self.refuse(id.as_ref(), trace_id.as_deref(), request, refusal);
            }
        }
    }

    async fn on_frame(&mut self, Frame { id, inbound }: Frame) {
        let (trace_id, request) = match &inbound {
            Inbound::Request(call) => (Some(call.trace_id.clone()), true),
            Inbound::Command(call) => (Some(call.trace_id.clone()), false),
            Inbound::Publish { trace_id, .. } => (Some(trace_id.clone()), false),
            _ => (None, false),
        };
        let refuse = |socket: &Socket, refusal: Refusal| {
            socket.refuse(id.as_ref(), trace_id.as_deref(), request, refusal);
        };
        if let Inbound::Authenticate(token) = inbound {
            return self.authenticate(id, token).await;
        }
        let Some(caller) = self.caller.clone() else {
            return refuse(
                self,
                Refusal::unauthenticated(
                    r#"authenticate first: {"type": "authenticate", "payload": {"token": "…"}}"#,
                ),
            );
        };
        if let Err(refusal) = self.gw.admit(&caller) {
            return refuse(self, refusal);
        }
        match inbound {
            Inbound::Request(call) => {
                if self.in_flight.len() >= self.gw.limits.max_in_flight.max(1) {
                    return refuse(self, self.too_many());
                }
                let gw = self.gw.clone();
                self.answer_later(async move {
                    let trace_id = call.trace_id.clone();
                    let outcome = gw.request(&caller, call).await.map_err(|r| r.error);
                    frames::response(id.as_ref(), &trace_id, &outcome)
                });
            }
            Inbound::Command(call) => {
                if self.in_flight.len() >= self.gw.limits.max_in_flight.max(1) {
                    return refuse(self, self.too_many());
                }
                let gw = self.gw.clone();
                self.answer_later(async move {
                    let trace_id = call.trace_id.clone();
                    match gw.command(&caller, call).await {
                        Ok(correlation_id) => {
                            frames::accepted(id.as_ref(), &correlation_id, &trace_id)
                        }
                        Err(r) => frames::error(id.as_ref(), Some(&trace_id), &r.error),
                    }
                });
            }
            Inbound::Publish {
                topic,
                event,
                context,
                trace_id,
            } => match self
                .gw
                .publish(&caller, &topic, event, context, trace_id.clone())
            {
                Ok(correlation_id) => {
                    self.push(frames::accepted(id.as_ref(), &correlation_id, &trace_id))
                }
                Err(refusal) => refuse(self, refusal),
            },
            Inbound::Subscribe(pattern) => match self.subscribe(&pattern, &caller) {
                Ok(()) => self.push(frames::reply(
                    "subscribed",
                    id.as_ref(),
                    json!({"topic": pattern}),
                )),
                Err(refusal) => refuse(self, refusal),
            },
            Inbound::Unsubscribe(pattern) => {
                if let Some(i) = self.subscriptions.iter().position(|p| *p == pattern) {
                    self.subscriptions.swap_remove(i);
                    self.gw.hub.unsubscribe(&pattern, self.id);
                    self.push(frames::reply(
                        "unsubscribed",
                        id.as_ref(),
                        json!({"topic": pattern}),
                    ));
                } else {
                    refuse(
                        self,
                        Refusal::invalid(format!("not subscribed to {pattern:?}")),
                    );
                }
            }
            Inbound::Describe(service) => {
                if self.in_flight.len() >= self.gw.limits.max_in_flight.max(1) {
                    return refuse(self, self.too_many());
                }
                let gw = self.gw.clone();
                self.answer_later(async move {
                    match gw.catalog.describe(&gw.mesh, &service, false).await {
                        Ok(d) => frames::reply(
                            "description",
                            id.as_ref(),
                            json!({"service": service, "description": &*d}),
                        ),
                        Err(r) => frames::error(id.as_ref(), None, &r.error),
                    }
                });
            }
            Inbound::Authenticate(_) => {}
        }
    }

    /// Adds `work` to the socket's calls in flight; the socket reads on meanwhile, and writes
    /// the frame `work` makes once it is done.
    fn answer_later(
        &mut self,
        work: impl std::future::Future<Output = Utf8Bytes> + Send + 'static,
    ) {
        self.in_flight.push(Box::pin(work));
    }

    fn too_many(&self) -> Refusal {
        self.gw.metrics.refused(Reason::InFlight);
        Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Other(crate::error::RATE_LIMITED.to_owned()),
            format!(
                "{} requests are in flight on this socket, the most it may have",
                self.gw.limits.max_in_flight
            ),
        )
    }

    fn subscriber(&self, caller: &Caller) -> Subscriber {
        Subscriber {
            outbox: self.outbox.clone(),
            user_id: caller.identity.user_id.clone(),
            closer: self.closer.clone(),
        }
    }

    fn subscribe(&mut self, pattern: &str, caller: &Caller) -> Result<(), Refusal> {
        topic::check(pattern, true).map_err(Refusal::invalid)?;
        if self.subscriptions.iter().any(|p| p == pattern) {
            return Ok(());
        }
        if self.subscriptions.len() >= self.gw.limits.max_subscriptions {
            return Err(Refusal::invalid(format!(
                "a socket may subscribe to at most {} patterns",
                self.gw.limits.max_subscriptions
            )));
        }
        self.gw
            .hub
            .subscribe(pattern, self.id, self.subscriber(caller));
        self.subscriptions.push(pattern.to_owned());
        Ok(())
    }

    /// An `authenticate` frame: the first identity of a socket opened without a token, or a
    /// fresh token for the same user (which moves the expiry).
    async fn authenticate(&mut self, id: Option<Value>, token: String) {
        if let Err(refusal) = self.gw.admit_address(&self.address) {
            return self.refuse(id.as_ref(), None, false, refusal);
        }
        let token = auth::strip_bearer(&token).map(str::to_owned);
        if token.is_none() {
            return self.refuse(
                id.as_ref(),
                None,
                false,
                Refusal::unauthenticated("the token is empty"),
            );
        }
        let caller = match self.gw.identify(token, &self.address).await {
            Ok(caller) => caller,
            Err(refusal) => return self.refuse(id.as_ref(), None, false, refusal),
        };
        let first = self.caller.is_none();
        if let Some(old) = &self.caller
            && old.identity.user_id.is_some()
            && old.identity.user_id != caller.identity.user_id
        {
            return self.refuse(
                id.as_ref(),
                None,
                false,
                Refusal::invalid("a socket's token may be renewed only for the same user"),
            );
        }
        let caller = Arc::new(caller);
        for pattern in &self.subscriptions {
            self.gw
                .hub
                .subscribe(pattern, self.id, self.subscriber(&caller));
        }
        let expires_at = caller
            .identity
            .expires_at
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        self.push(frames::reply(
            "authenticated",
            id.as_ref(),
            json!({"user_id": caller.identity.user_id, "username": caller.identity.username, "expires_at": expires_at}),
        ));
        self.caller = Some(caller);
        if first {
            self.hello();
        }
    }
}
