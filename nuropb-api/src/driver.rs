//! The connection driver: one task per endpoint that opens the sockets the [`Endpoint`] asks
//! for, moves bytes and time between them, runs handlers, and answers the handles' orders.
//!
//! Every decision is the endpoint's — which node, when to reconnect, when a shutdown is done; the
//! driver does what its outputs say. It is a hand-written future, polled by whatever runtime
//! spawned it: each wake-up reads what the socket has, applies orders and handler outcomes, hands
//! out calls and responses, and writes everything the endpoint has to send in one go. Handlers
//! are polled once in place and only spawned as tasks when they have to wait, so a quick handler
//! costs no task switch.

use crate::backlog::Backlog;
use crate::context::{CallContext, take_events};
use crate::runtime::{BoxFuture, Runtime, Stream, Target};
use crate::service::{AuthorizeFn, EventFn, HandlerFn};
use crate::state::{ConnectionState, SharedState};
use futures_channel::{mpsc, oneshot};
use futures_io::AsyncRead;
use futures_util::StreamExt;
use nuropb_proto::describe::ServiceDescription;
use nuropb_proto::mesh::{
    Call, DeliveryId, Endpoint, EventSpec, IncomingEvent, Outcome, OutgoingEvent, Output, Request,
    RequestId,
};
use nuropb_proto::{ErrorKind, NuropbError};
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// A handle's order to the driver.
pub(crate) enum Order {
    Request(Request, oneshot::Sender<Result<Value, NuropbError>>),
    /// A command: fire and forget (what goes wrong is logged).
    Send(Request),
    /// An event: fire and forget.
    Publish(OutgoingEvent),
    /// A description: from the endpoint's cache unless `refresh`, else asked for.
    Describe(
        String,
        bool,
        oneshot::Sender<Result<ServiceDescription, NuropbError>>,
    ),
    ConfigureMesh(oneshot::Sender<Result<(), NuropbError>>),
    Shutdown(Duration, oneshot::Sender<()>),
}

/// The handlers of a service.
pub(crate) struct Handlers {
    pub(crate) methods: HashMap<String, (HandlerFn, Option<AuthorizeFn>)>,
    pub(crate) events: Option<EventFn>,
}

struct Completion {
    delivery: DeliveryId,
    outcome: Outcome,
    events: Vec<EventSpec>,
}

enum Responder {
    Value(oneshot::Sender<Result<Value, NuropbError>>),
    Describe(
        String,
        oneshot::Sender<Result<ServiceDescription, NuropbError>>,
    ),
}

/// The driver future.
pub(crate) struct Driver {
    runtime: Arc<dyn Runtime>,
    /// The participant's name, for logs.
    name: String,
    /// The broker's nodes, as the endpoint numbers them.
    targets: Vec<Target>,
    endpoint: Endpoint,
    handlers: Option<Arc<Handlers>>,
    commands: mpsc::UnboundedReceiver<Order>,
    /// The count of queued commands and events, and of bytes not yet written, that the handles
    /// refuse more past.
    backlog: Arc<Backlog>,
    /// Where the connection stands, for the handles.
    state: Arc<SharedState>,
    /// Commands and events taken off the queue this turn: released from the backlog only once
    /// what they became (messages waiting, bytes unwritten) is counted, so that the handles never
    /// see less than there is.
    taken: usize,
    commands_open: bool,
    completions_tx: mpsc::UnboundedSender<Completion>,
    completions_rx: mpsc::UnboundedReceiver<Completion>,
    stream: Option<Box<dyn Stream>>,
    /// The socket is to be dropped once what the endpoint still has for it is written.
    dropping: bool,
    connecting: Option<BoxFuture<io::Result<Box<dyn Stream>>>>,
    read_buf: Box<[u8]>,
    write_buf: Vec<u8>,
    written: usize,
    responders: HashMap<RequestId, Responder>,
    mesh_waiters: Vec<oneshot::Sender<Result<(), NuropbError>>>,
    ready: Option<oneshot::Sender<Result<(), NuropbError>>>,
    timer: Option<(Instant, BoxFuture<()>)>,
    shutdown_replies: Vec<oneshot::Sender<()>>,
    finished: bool,
}

impl Driver {
    pub(crate) fn new(
        runtime: Arc<dyn Runtime>,
        targets: Vec<Target>,
        endpoint: Endpoint,
        handlers: Option<Arc<Handlers>>,
        (commands, backlog, state): (
            mpsc::UnboundedReceiver<Order>,
            Arc<Backlog>,
            Arc<SharedState>,
        ),
        ready: oneshot::Sender<Result<(), NuropbError>>,
    ) -> Driver {
        let (completions_tx, completions_rx) = mpsc::unbounded();
        Driver {
            name: endpoint.config().name(),
            runtime,
            targets,
            endpoint,
            handlers,
            commands,
            backlog,
            state,
            taken: 0,
            commands_open: true,
            completions_tx,
            completions_rx,
            stream: None,
            dropping: false,
            connecting: None,
            read_buf: vec![0; 128 * 1024].into_boxed_slice(),
            write_buf: Vec::with_capacity(64 * 1024),
            written: 0,
            responders: HashMap::new(),
            mesh_waiters: Vec::new(),
            ready: Some(ready),
            timer: None,
            shutdown_replies: Vec::new(),
            finished: false,
        }
    }

    /// One pass over every source of work; true if anything happened.
    fn turn(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        progress |= self.poll_connect(cx);
        progress |= self.poll_read(cx);
        progress |= self.poll_commands(cx);
        progress |= self.poll_completions(cx);
        progress |= self.poll_timer(cx);
        progress |= self.dispatch();
        progress |= self.poll_write(cx);
        self.backlog.set_held(
            self.endpoint.waiting(),
            self.write_buf.len() - self.written + self.endpoint.pending_output(),
        );
        if self.taken > 0 {
            self.backlog.release(std::mem::take(&mut self.taken));
        }
        progress
    }

    fn poll_connect(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(connecting) = &mut self.connecting else {
            return false;
        };
        let Poll::Ready(result) = connecting.as_mut().poll(cx) else {
            return false;
        };
        self.connecting = None;
        match result {
            Ok(stream) => {
                self.stream = Some(stream);
                self.endpoint.connected(Instant::now());
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot connect to the broker");
                self.endpoint.connect_failed(e, Instant::now());
            }
        }
        true
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        // Bounded, so that a busy socket does not starve commands and completions.
        for _ in 0..16 {
            let Some(stream) = &mut self.stream else {
                break;
            };
            match Pin::new(stream).poll_read(cx, &mut self.read_buf) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    self.stream = None;
                    self.endpoint.handle_eof(Instant::now());
                    return true;
                }
                Poll::Ready(Ok(n)) => {
                    self.endpoint
                        .handle_input(&self.read_buf[..n], Instant::now());
                    progress = true;
                }
                Poll::Pending => break,
            }
        }
        progress
    }

    fn poll_commands(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        while self.commands_open {
            match self.commands.poll_next_unpin(cx) {
                Poll::Ready(Some(command)) => {
                    self.apply(command);
                    progress = true;
                }
                Poll::Ready(None) => {
                    // Every handle is gone: a client closes once the work in hand is done.
                    self.commands_open = false;
                    if self.handlers.is_none() {
                        self.endpoint.shutdown(Duration::ZERO, Instant::now());
                    }
                }
                Poll::Pending => break,
            }
        }
        progress
    }

    fn apply(&mut self, command: Order) {
        let now = Instant::now();
        match command {
            Order::Request(request, reply) => {
                let span = tracing::debug_span!("nuropb.request", service = %request.service, method = %request.method, trace_id = %request.trace_id.as_deref().unwrap_or(""));
                let _enter = span.enter();
                match self.endpoint.request(request, now) {
                    Ok(id) => {
                        self.responders.insert(id, Responder::Value(reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Order::Send(request) => {
                self.taken += 1;
                if let Err(error) = self.endpoint.command(request, now) {
                    tracing::warn!(%error, "command not sent");
                }
            }
            Order::Publish(event) => {
                self.taken += 1;
                if let Err(error) = self.endpoint.publish_event(event, now) {
                    tracing::warn!(%error, "event not published");
                }
            }
            Order::Describe(service, refresh, reply) => {
                if !refresh && let Some(description) = self.endpoint.description(&service) {
                    let _ = reply.send(Ok(description.clone()));
                    return;
                }
                match self.endpoint.describe(&service, now) {
                    Ok(id) => {
                        self.responders
                            .insert(id, Responder::Describe(service, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Order::ConfigureMesh(reply) => {
                self.mesh_waiters.push(reply);
                self.endpoint.configure_mesh(now);
            }
            Order::Shutdown(grace, reply) => {
                self.shutdown_replies.push(reply);
                self.endpoint.shutdown(grace, now);
            }
        }
    }

    fn poll_completions(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        while let Poll::Ready(Some(done)) = self.completions_rx.poll_next_unpin(cx) {
            self.complete(done);
            progress = true;
        }
        progress
    }

    fn complete(&mut self, done: Completion) {
        // A stale delivery was requeued by the broker when its channel closed: nothing to do.
        let _ = self
            .endpoint
            .complete(done.delivery, done.outcome, done.events, Instant::now());
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(next) = self.endpoint.poll_timeout() else {
            self.timer = None;
            return false;
        };
        // The heartbeat deadline moves with every byte in or out: a new timer only when the next
        // deadline comes sooner. One that fires early is harmless (nothing is due yet, and the
        // next turn arms the timer again).
        if self.timer.as_ref().is_none_or(|(at, _)| next < *at) {
            self.timer = Some((next, self.runtime.sleep_until(next)));
        }
        let Some((_, sleep)) = &mut self.timer else {
            return false;
        };
        if sleep.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.timer = None;
        self.endpoint.handle_timeout(Instant::now());
        true
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        if self.stream.is_none() {
            // Nothing is taken from the endpoint until there is a socket to write it to.
            self.dropping = false;
            return false;
        }
        loop {
            if self.written == self.write_buf.len() {
                self.write_buf.clear();
                self.written = 0;
                if self.endpoint.poll_transmit(&mut self.write_buf) == 0 {
                    break;
                }
            }
            let Some(stream) = &mut self.stream else {
                break;
            };
            match Pin::new(&mut **stream).poll_write(cx, &self.write_buf[self.written..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                    self.stream = None;
                    self.endpoint.handle_eof(Instant::now());
                    progress = true;
                    break;
                }
                Poll::Ready(Ok(n)) => {
                    self.written += n;
                    progress = true;
                }
                Poll::Pending => {
                    // Waiting for the socket to take more: nothing else to do with it now (a
                    // flush here would register another waker in place of the write's).
                    if std::mem::take(&mut self.dropping) {
                        self.drop_stream();
                    }
                    return progress;
                }
            }
        }
        if let Some(stream) = &mut self.stream
            && let Poll::Ready(Err(_)) = Pin::new(&mut **stream).poll_flush(cx)
        {
            self.stream = None;
            self.endpoint.handle_eof(Instant::now());
            progress = true;
        }
        if std::mem::take(&mut self.dropping) {
            // What the endpoint had for the old socket was offered to it; it goes now.
            self.drop_stream();
        }
        progress
    }

    fn drop_stream(&mut self) {
        self.stream = None;
        self.write_buf.clear();
        self.written = 0;
    }

    /// Acts on what the endpoint asks for and tells; true if it said anything.
    fn dispatch(&mut self) -> bool {
        let mut any = false;
        while let Some(output) = self.endpoint.poll_output() {
            any = true;
            match output {
                Output::Connect { node } => {
                    let target = self.targets[node.min(self.targets.len() - 1)].clone();
                    tracing::info!(target = %target.host, port = target.port, "connecting");
                    self.drop_stream();
                    self.dropping = false;
                    self.connecting = Some(self.runtime.connect(target));
                }
                Output::Ready => {
                    tracing::info!(name = %self.name, "ready");
                    self.state.set(ConnectionState::Ready);
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                }
                Output::MeshConfigured => {
                    for waiter in self.mesh_waiters.drain(..) {
                        let _ = waiter.send(Ok(()));
                    }
                }
                Output::Call(call) => self.run_call(call),
                Output::Incoming(event) => self.run_event(event),
                Output::Response { request, result } => match self.responders.remove(&request) {
                    Some(Responder::Value(reply)) => {
                        let _ = reply.send(result);
                    }
                    Some(Responder::Describe(service, reply)) => {
                        let description = result.and_then(|_| {
                            self.endpoint.description(&service).cloned().ok_or_else(|| {
                                NuropbError::new(ErrorKind::Message, "bad description")
                            })
                        });
                        let _ = reply.send(description);
                    }
                    None => {}
                },
                Output::NotDelivered {
                    correlation_id,
                    kind,
                    error,
                } => tracing::warn!(%correlation_id, %kind, %error, "not delivered"),
                Output::Unreadable(message) => {
                    self.state.count_unreadable();
                    tracing::warn!(
                        name = %self.name,
                        arrival = ?message.arrival,
                        correlation_id = message.correlation_id.as_deref().unwrap_or("-"),
                        answered = message.answered,
                        reason = %message.reason,
                        "a message that cannot be read: the publisher's bytes; rejected once, \
                         nothing else affected"
                    );
                }
                Output::Blocked(blocked) => tracing::warn!(blocked, "broker flow control"),
                Output::Disconnected {
                    error,
                    reconnect_in,
                } => {
                    self.state.set(ConnectionState::Reconnecting);
                    self.connecting = None;
                    self.dropping = true;
                    tracing::warn!(%error, ?reconnect_in, "disconnected; reconnecting");
                }
                Output::Stopped { error } => {
                    if let Some(error) = &error {
                        tracing::error!(%error, "stopped");
                    }
                    let error =
                        error.unwrap_or_else(|| NuropbError::new(ErrorKind::Transport, "closed"));
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Err(error.clone()));
                    }
                    for waiter in self.mesh_waiters.drain(..) {
                        let _ = waiter.send(Err(error.clone()));
                    }
                    self.finish();
                }
            }
        }
        any
    }

    /// The driver ends (the one place it does): the handles see it stopped, shutdowns are
    /// answered, and the next poll fails whatever still waits.
    fn finish(&mut self) {
        self.finished = true;
        self.connecting = None;
        self.state.set(ConnectionState::Stopped);
        for reply in self.shutdown_replies.drain(..) {
            let _ = reply.send(());
        }
    }

    fn run_call(&mut self, call: Call) {
        let delivery = call.delivery;
        let handler = self
            .handlers
            .as_ref()
            .and_then(|h| h.methods.get(&call.method).cloned());
        let Some((handler, authorize)) = handler else {
            let error = NuropbError::new(
                ErrorKind::Handling,
                format!("Unknown method {}", call.method),
            );
            return self.complete(Completion {
                delivery,
                outcome: Outcome::Err(error),
                events: Vec::new(),
            });
        };
        let span = tracing::info_span!(
            "nuropb.call",
            service = %self.name,
            method = %call.method,
            correlation_id = %call.correlation_id,
            trace_id = %call.trace_id.as_deref().unwrap_or(""),
        );
        let ctx = CallContext {
            method: call.method,
            context: call.context,
            claims: None,
            trace_id: call.trace_id,
            correlation_id: call.correlation_id,
            encrypted: call.encrypted,
            events: Arc::default(),
        };
        let params = call.params;
        let token = call.token;
        let future = async move {
            let mut ctx = ctx;
            if let (Some(authorize), Some(token)) = (authorize, token) {
                match authorize(token).await {
                    Ok(claims) => ctx.claims = Some(claims),
                    Err(error) => return (Outcome::Err(error), Vec::new()),
                }
            }
            let events = ctx.events.clone();
            let outcome = handler(ctx, params).await;
            tracing::debug!(outcome = outcome_name(&outcome), "call handled");
            (outcome, take_events(&events))
        };
        self.run(delivery, Box::pin(future.instrument(span)));
    }

    fn run_event(&mut self, event: IncomingEvent) {
        let delivery = event.delivery;
        let handler = self.handlers.as_ref().and_then(|h| h.events.clone());
        let Some(handler) = handler else {
            let error = NuropbError::new(
                ErrorKind::Handling,
                format!(
                    "error calling instance._event_handler for topic: {}",
                    event.topic
                ),
            );
            return self.complete(Completion {
                delivery,
                outcome: Outcome::Err(error),
                events: Vec::new(),
            });
        };
        let span = tracing::info_span!(
            "nuropb.event",
            service = %self.name,
            topic = %event.topic,
            correlation_id = %event.correlation_id,
            trace_id = %event.trace_id.as_deref().unwrap_or(""),
        );
        let ctx = CallContext {
            method: event.topic.clone(),
            context: event.context.clone(),
            claims: None,
            trace_id: event.trace_id.clone(),
            correlation_id: event.correlation_id.clone(),
            encrypted: false,
            events: Arc::default(),
        };
        let events = ctx.events.clone();
        let future = async move {
            let outcome = match handler(event, ctx).await {
                Ok(()) => Outcome::Ok(Value::Null),
                Err(e) => Outcome::Err(e),
            };
            tracing::debug!(outcome = outcome_name(&outcome), "event handled");
            (outcome, take_events(&events))
        };
        self.run(delivery, Box::pin(future.instrument(span)));
    }

    /// Polls a handler once here; spawns it only if it has to wait.
    fn run(&mut self, delivery: DeliveryId, mut future: BoxFuture<(Outcome, Vec<EventSpec>)>) {
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready((outcome, events)) => self.complete(Completion {
                delivery,
                outcome,
                events,
            }),
            Poll::Pending => {
                let done = self.completions_tx.clone();
                self.runtime.spawn(Box::pin(async move {
                    let (outcome, events) = future.await;
                    let _ = done.unbounded_send(Completion {
                        delivery,
                        outcome,
                        events,
                    });
                }));
            }
        }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        // Bounded, then yield, so that one endpoint cannot monopolise a worker thread.
        for _ in 0..64 {
            if this.finished {
                this.fail_remaining();
                return Poll::Ready(());
            }
            if !this.turn(cx) {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Driver {
    /// The driver ends: whoever still waits learns why.
    fn fail_remaining(&mut self) {
        let error = NuropbError::new(ErrorKind::Transport, "the endpoint has stopped");
        for (_, responder) in self.responders.drain() {
            match responder {
                Responder::Value(reply) => {
                    let _ = reply.send(Err(error.clone()));
                }
                Responder::Describe(_, reply) => {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            let _ = match command {
                Order::Request(_, reply) => reply.send(Err(error.clone())).is_ok(),
                Order::Send(_) | Order::Publish(_) => {
                    self.backlog.release(1);
                    true
                }
                Order::Describe(_, _, reply) => reply.send(Err(error.clone())).is_ok(),
                Order::ConfigureMesh(reply) => reply.send(Err(error.clone())).is_ok(),
                Order::Shutdown(_, reply) => reply.send(()).is_ok(),
            };
        }
        for reply in self.shutdown_replies.drain(..) {
            let _ = reply.send(());
        }
    }
}

/// How an outcome is named in logs (never with its values, which may hold secrets).
fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Ok(_) => "ok",
        Outcome::Err(_) => "error",
        Outcome::CallAgain(_) => "call again",
        Outcome::Success { .. } => "success",
    }
}
