//! The calling side of an endpoint: requests, commands, events, describe, and their fate.
//!
//! Responses are matched by the AMQP `correlation_id` property; a response nobody waits for —
//! Python services send a second one after errors — is dropped. Every request ends in exactly one
//! [`Output::Response`]: the service's answer, or an error the endpoint found itself (deadline
//! passed, not routable, connection lost).
//!
//! - `builders`: [`Request`] and [`OutgoingEvent`], what a caller builds;
//! - `pending`: requests waiting for a response, and their deadlines;
//! - `outbox`: messages waiting for the connection;
//! - `describe`: the describe cache, and requests waiting for a public key.

pub(crate) mod builders;
mod describe;
mod outbox;
mod pending;

pub use builders::{OutgoingEvent, Request};

use crate::amqp::{self, Properties};
use crate::crypto::keys;
use crate::describe::{DESCRIBE_METHOD, ServiceDescription};
use crate::error::{ErrorKind, NuropbError};
use crate::mesh::cx::Cx;
use crate::mesh::output::{Arrival, Output, RequestId};
use crate::message::{
    CallPayload, Envelope, EventLayout, EventPayload, Exchanges, MessageType, Payload, Publication,
    TransportMessage,
};
use describe::{AwaitingKey, Descriptions};
use outbox::{Outbox, Queued};
use pending::{Pending, PendingTable};
use serde_json::Value;
use std::time::{Duration, Instant};

/// What the calling side is configured with.
#[derive(Clone, Debug)]
pub(crate) struct CallsConfig {
    pub(crate) exchanges: Exchanges,
    pub(crate) response_queue: String,
    pub(crate) default_timeout: Duration,
    pub(crate) max_pending: usize,
    pub(crate) max_outbox: usize,
}

/// Requests waiting, messages waiting, what is known of other services.
#[derive(Debug)]
pub(crate) struct Calls {
    config: CallsConfig,
    pending: PendingTable,
    outbox: Outbox,
    describe: Descriptions,
    next_request: u64,
}

/// The sizes of the calling side's tables.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    pub(crate) pending: usize,
    pub(crate) deadlines: usize,
    pub(crate) outbox: usize,
    pub(crate) awaiting_key: usize,
    pub(crate) internal: usize,
    pub(crate) descriptions: usize,
}

impl Calls {
    pub(crate) fn new(config: CallsConfig) -> Self {
        Calls {
            outbox: Outbox::new(config.max_outbox),
            config,
            pending: PendingTable::default(),
            describe: Descriptions::default(),
            next_request: 0,
        }
    }

    pub(crate) fn sizes(&self) -> Sizes {
        Sizes {
            pending: self.pending.len(),
            deadlines: self.pending.deadlines(),
            outbox: self.outbox.len(),
            awaiting_key: self.describe.awaiting(),
            internal: self.describe.internal.len(),
            descriptions: self.describe.by_service.len(),
        }
    }

    /// Requests waiting for a response, those waiting for a key included.
    pub(crate) fn pending_requests(&self) -> usize {
        self.pending.len() + self.describe.awaiting()
    }

    /// Messages waiting for the connection.
    pub(crate) fn waiting(&self) -> usize {
        self.outbox.len()
    }

    /// The soonest deadline of anything waiting.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [
            self.pending.next_deadline(),
            self.outbox.next_deadline(),
            self.describe.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn next_request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    // ----- requests, commands, events, describe -----

    /// Sends a request: see [`Endpoint::request`](crate::mesh::Endpoint::request).
    pub(crate) fn request(
        &mut self,
        request: Request,
        cx: &mut Cx<'_>,
    ) -> Result<RequestId, NuropbError> {
        if self.pending_requests() >= self.config.max_pending {
            return Err(NuropbError::new(
                ErrorKind::Transport,
                format!("{} requests are pending already", self.config.max_pending),
            ));
        }
        let correlation_id = match request.correlation_id.clone() {
            Some(given) if self.pending.contains(&given) || self.describe.awaits(&given) => {
                return Err(NuropbError::new(
                    ErrorKind::Message,
                    format!("a request with correlation id {given} is in flight already"),
                ));
            }
            Some(given) => given,
            None => cx.ids.next_id(),
        };
        let id = self.next_request_id();
        let deadline = cx.now + request.timeout.unwrap_or(self.config.default_timeout);
        if request.encrypted && !cx.crypto.has_public_key(&request.service) {
            let service = request.service.clone();
            let first = !self.describe.awaiting_key.contains_key(&service);
            self.describe
                .awaiting_key
                .entry(service.clone())
                .or_default()
                .push(AwaitingKey {
                    id,
                    request,
                    correlation_id,
                    deadline,
                });
            if first {
                self.describe_for_key(&service, deadline, cx)?;
            }
            return Ok(id);
        }
        self.send_request(id, request, correlation_id, deadline, cx)?;
        Ok(id)
    }

    fn send_request(
        &mut self,
        id: RequestId,
        request: Request,
        correlation_id: String,
        deadline: Instant,
        cx: &mut Cx<'_>,
    ) -> Result<(), NuropbError> {
        let ttl = request
            .ttl
            .unwrap_or(deadline.saturating_duration_since(cx.now));
        let encrypted = request.encrypted;
        let (service, method) = (request.service.clone(), request.method.clone());
        let publication =
            self.call_publication(MessageType::Request, request, &correlation_id, ttl, cx)?;
        self.pending.insert(
            correlation_id.clone(),
            Pending {
                id,
                deadline,
                service,
                method,
                encrypted,
                sent: false,
                unreadable: None,
            },
        );
        self.send(
            Queued {
                correlation_id,
                kind: MessageType::Request,
                publication,
                deadline,
            },
            cx,
        );
        Ok(())
    }

    /// Sends a command: see [`Endpoint::command`](crate::mesh::Endpoint::command).
    pub(crate) fn command(
        &mut self,
        request: Request,
        cx: &mut Cx<'_>,
    ) -> Result<String, NuropbError> {
        let correlation_id = request
            .correlation_id
            .clone()
            .unwrap_or_else(|| cx.ids.next_id());
        let timeout = request.timeout.unwrap_or(self.config.default_timeout);
        let ttl = request.ttl.unwrap_or(timeout);
        let publication =
            self.call_publication(MessageType::Command, request, &correlation_id, ttl, cx)?;
        let deadline = cx.now + timeout;
        self.send(
            Queued {
                correlation_id: correlation_id.clone(),
                kind: MessageType::Command,
                publication,
                deadline,
            },
            cx,
        );
        Ok(correlation_id)
    }

    /// Publishes an event: see [`Endpoint::publish_event`](crate::mesh::Endpoint::publish_event).
    pub(crate) fn publish_event(
        &mut self,
        event: OutgoingEvent,
        cx: &mut Cx<'_>,
    ) -> Result<String, NuropbError> {
        let correlation_id = event.correlation_id.unwrap_or_else(|| cx.ids.next_id());
        let payload = Payload::Event(EventPayload {
            topic: event.topic,
            event: event.event,
            context: event.context,
            trace_id: event.trace_id,
            correlation_id: correlation_id.clone(),
            target: Value::Null,
            layout: EventLayout::Published,
        });
        let message = TransportMessage::new(payload);
        let publication = Publication::plaintext(&message, &self.config.exchanges, "")
            .map_err(|e| NuropbError::new(ErrorKind::Message, e.to_string()))?;
        let deadline = cx.now + self.config.default_timeout;
        self.send(
            Queued {
                correlation_id: correlation_id.clone(),
                kind: MessageType::Event,
                publication,
                deadline,
            },
            cx,
        );
        Ok(correlation_id)
    }

    /// Asks `service` to describe itself.
    pub(crate) fn describe(
        &mut self,
        service: &str,
        cx: &mut Cx<'_>,
    ) -> Result<RequestId, NuropbError> {
        self.request(
            Request::new(service, DESCRIBE_METHOD).timeout(Duration::from_secs(60)),
            cx,
        )
    }

    fn describe_for_key(
        &mut self,
        service: &str,
        deadline: Instant,
        cx: &mut Cx<'_>,
    ) -> Result<(), NuropbError> {
        let id = self.next_request_id();
        let correlation_id = cx.ids.next_id();
        let request = Request::new(service, DESCRIBE_METHOD)
            .timeout(deadline.saturating_duration_since(cx.now));
        self.describe.internal.insert(id);
        self.send_request(id, request, correlation_id, deadline, cx)
    }

    /// The last description of `service` received, if any.
    pub(crate) fn description(&self, service: &str) -> Option<&ServiceDescription> {
        self.describe.by_service.get(service)
    }

    /// Builds the publication of a request or command, encrypting it if asked.
    fn call_publication(
        &mut self,
        kind: MessageType,
        request: Request,
        correlation_id: &str,
        ttl: Duration,
        cx: &mut Cx<'_>,
    ) -> Result<Publication, NuropbError> {
        let encrypted = request.encrypted;
        // The service's name keys its public key; only an encrypted call needs it again.
        let key_of = encrypted.then(|| request.service.clone());
        let call = CallPayload {
            service: request.service,
            method: request.method,
            params: request.params,
            correlation_id: correlation_id.to_owned(),
            context: request.context,
            trace_id: request.trace_id,
        };
        let payload = match kind {
            MessageType::Command => Payload::Command(call),
            _ => Payload::Request(call),
        };
        let mut message = TransportMessage::new(payload);
        message.ttl = Some(ttl.as_millis().max(1) as u64);
        message.encrypted = encrypted;
        let json = message.payload.to_json();
        let body = if let Some(service) = key_of {
            cx.crypto
                .encrypt_call(
                    &service,
                    correlation_id,
                    &json,
                    kind == MessageType::Request,
                    cx.unix,
                    cx.now,
                )
                .map_err(|e| NuropbError::new(ErrorKind::Message, e.to_string()))?
        } else {
            json
        };
        Publication::new(
            &message,
            &self.config.exchanges,
            &self.config.response_queue,
            body,
        )
        .map_err(|e| NuropbError::new(ErrorKind::Message, e.to_string()))
    }

    // ----- the outbox -----

    /// Publishes now when ready, else keeps it for later (bounded).
    fn send(&mut self, queued: Queued, cx: &mut Cx<'_>) {
        if let Some(session) = cx.ready_session()
            && session.publish(&queued.publication)
        {
            if let Some(pending) = self.pending.get_mut(&queued.correlation_id) {
                pending.sent = true;
            }
            return;
        }
        if self.outbox.is_full() {
            let error = NuropbError::new(ErrorKind::Transport, "the outbox is full: not connected");
            return self.drop_queued(queued, error, cx);
        }
        self.outbox.push(queued);
    }

    /// The endpoint is ready: sends what waited for the connection.
    pub(crate) fn flush(&mut self, cx: &mut Cx<'_>) {
        for queued in self.outbox.take() {
            if queued.kind == MessageType::Request && !self.pending.contains(&queued.correlation_id)
            {
                continue; // its deadline passed
            }
            if queued.deadline <= cx.now {
                let error = NuropbError::new(ErrorKind::Timeout, "not sent before its deadline");
                self.drop_queued(queued, error, cx);
                continue;
            }
            self.send(queued, cx);
        }
    }

    /// Reports a message that will not be sent.
    fn drop_queued(&mut self, queued: Queued, error: NuropbError, cx: &mut Cx<'_>) {
        match queued.kind {
            MessageType::Request => self.resolve(&queued.correlation_id, Err(error), cx),
            kind => cx.out.push(Output::NotDelivered {
                correlation_id: queued.correlation_id,
                kind,
                error,
            }),
        }
    }

    // ----- responses -----

    /// Ends the pending request `correlation_id` with `result`: its one and only response.
    fn resolve(
        &mut self,
        correlation_id: &str,
        result: Result<Value, NuropbError>,
        cx: &mut Cx<'_>,
    ) {
        let Some(pending) = self.pending.remove(correlation_id) else {
            return;
        };
        if pending.encrypted {
            cx.crypto.forget_sent(correlation_id);
        }
        if pending.method == DESCRIBE_METHOD {
            self.on_description(&pending.service, &result, cx);
        }
        if !self.describe.internal.remove(&pending.id) {
            cx.out.push(Output::Response {
                request: pending.id,
                result,
            });
        }
    }

    /// A describe response: keep the description and its key; send the requests that waited
    /// for the key (or fail them).
    fn on_description(
        &mut self,
        service: &str,
        result: &Result<Value, NuropbError>,
        cx: &mut Cx<'_>,
    ) {
        let outcome = match result {
            Ok(value) => match serde_json::from_value::<ServiceDescription>(value.clone()) {
                Ok(description) => {
                    // A description with an unreadable key: encrypted calls to it fail with
                    // "no public key".
                    if let Some(pem) = &description.public_key
                        && let Ok(key) = keys::public_key_from_pem(pem)
                    {
                        cx.crypto.add_public_key(service, key);
                    }
                    self.describe
                        .by_service
                        .insert(service.to_owned(), description);
                    Ok(())
                }
                Err(e) => Err(NuropbError::new(
                    ErrorKind::Message,
                    format!("bad description from {service}: {e}"),
                )),
            },
            Err(e) => Err(e.clone()),
        };
        let Some(waiting) = self.describe.awaiting_key.remove(service) else {
            return;
        };
        for waiter in waiting {
            let error = match &outcome {
                Err(e) => Some(e.clone()),
                Ok(()) if !cx.crypto.has_public_key(service) => Some(NuropbError::new(
                    ErrorKind::Message,
                    format!("Service public key not found for service: {service}"),
                )),
                Ok(()) => None,
            };
            let error = match error {
                Some(error) => Some(error),
                // The deadline stands; the ttl is what is left of it.
                None => self
                    .send_request(
                        waiter.id,
                        waiter.request,
                        waiter.correlation_id,
                        waiter.deadline,
                        cx,
                    )
                    .err(),
            };
            if let Some(error) = error {
                cx.out.push(Output::Response {
                    request: waiter.id,
                    result: Err(error),
                });
            }
        }
    }

    /// A message on the response queue. One that cannot be read fails no request: it is
    /// dropped and counted, and the request it names (if any) waits for its real answer or its
    /// deadline, whose error then says what came instead.
    pub(crate) fn on_response(&mut self, delivery: amqp::Delivery, cx: &mut Cx<'_>) {
        let envelope = match Envelope::from_properties(&delivery.properties) {
            Ok(envelope) => envelope,
            Err(e) => {
                let correlation_id = delivery
                    .properties
                    .correlation_id
                    .as_ref()
                    .map(|c| c.as_str().to_owned());
                return self.drop_response(correlation_id, e.to_string(), cx);
            }
        };
        if envelope.kind != MessageType::Response {
            return;
        }
        let correlation_id = envelope.correlation_id.clone();
        if !self.pending.contains(&correlation_id) {
            return; // unpaired or duplicate
        }
        let body = if envelope.encrypted && !delivery.body.starts_with(b"{") {
            match cx
                .crypto
                .decrypt_response(&correlation_id, &delivery.body, cx.now)
            {
                Ok(body) => body,
                Err(e) => return self.drop_response(Some(correlation_id), e.to_string(), cx),
            }
        } else {
            delivery.body
        };
        let result = match envelope.open(&body) {
            Ok(TransportMessage {
                payload: Payload::Response(response),
                ..
            }) => match response.error {
                Some(error) => Err(error),
                None => Ok(response.result),
            },
            Ok(_) => return,
            Err(e) => return self.drop_response(Some(correlation_id), e.to_string(), cx),
        };
        self.resolve(&correlation_id, result, cx);
    }

    /// Drops a response that cannot be read, noting why on the request it names.
    pub(crate) fn drop_response(
        &mut self,
        correlation_id: Option<String>,
        reason: String,
        cx: &mut Cx<'_>,
    ) {
        if let Some(pending) = correlation_id
            .as_ref()
            .and_then(|c| self.pending.get_mut(c))
        {
            pending.unreadable.get_or_insert_with(|| reason.clone());
        }
        cx.out
            .unreadable(Arrival::ResponseQueue, correlation_id, reason, false);
    }

    /// A message the broker could not route.
    pub(crate) fn on_returned(&mut self, returned: &amqp::Returned, cx: &mut Cx<'_>) {
        let Some(correlation_id) = returned
            .properties
            .correlation_id
            .as_ref()
            .map(|c| c.as_str().to_owned())
        else {
            return;
        };
        match nuropb_type(&returned.properties) {
            Some(MessageType::Request) => {
                let Some(pending) = self.pending.get(&correlation_id) else {
                    return;
                };
                let error = NuropbError::new(
                    ErrorKind::NotDelivered,
                    format!(
                        "Service {} not available. unable to call method {}",
                        pending.service, pending.method
                    ),
                );
                self.resolve(&correlation_id, Err(error), cx);
            }
            Some(kind @ (MessageType::Command | MessageType::Event)) => {
                let error = NuropbError::new(
                    ErrorKind::NotDelivered,
                    format!(
                        "{kind} not delivered: {} {} (routing key {})",
                        returned.reply_code, returned.reply_text, returned.routing_key
                    ),
                );
                cx.out.push(Output::NotDelivered {
                    correlation_id,
                    kind,
                    error,
                });
            }
            _ => {}
        }
    }

    // ----- time and loss -----

    /// Fails requests whose deadline passed, and queued messages past theirs.
    pub(crate) fn expire(&mut self, cx: &mut Cx<'_>) {
        for correlation_id in self.pending.expired(cx.now) {
            let why = match self.pending.get(&correlation_id) {
                Some(Pending {
                    unreadable: Some(why),
                    ..
                }) => format!(
                    "no response before the request's deadline (one that came could not be \
                     read: {why})"
                ),
                _ => "no response before the request's deadline".to_owned(),
            };
            self.resolve(
                &correlation_id,
                Err(NuropbError::new(ErrorKind::Timeout, why)),
                cx,
            );
        }
        for queued in self.outbox.take_expired(cx.now) {
            let error = NuropbError::new(ErrorKind::Timeout, "not sent before its deadline");
            self.drop_queued(queued, error, cx);
        }
        for waiter in self.describe.take_expired(cx.now) {
            cx.out.push(Output::Response {
                request: waiter.id,
                result: Err(NuropbError::new(
                    ErrorKind::Timeout,
                    "no public key for the service before the request's deadline",
                )),
            });
        }
    }

    /// Fails the requests published on the connection or channel that was lost.
    pub(crate) fn fail_sent(&mut self, reason: &str, cx: &mut Cx<'_>) {
        for correlation_id in self.pending.sent() {
            let error = NuropbError::new(
                ErrorKind::Transport,
                format!("{reason}; the request may or may not have been handled"),
            );
            self.resolve(&correlation_id, Err(error), cx);
        }
    }

    /// Fails everything: the endpoint stopped.
    pub(crate) fn fail_all(&mut self, reason: &str, cx: &mut Cx<'_>) {
        let error = NuropbError::new(ErrorKind::Transport, format!("endpoint stopped: {reason}"));
        for correlation_id in self.pending.all() {
            self.resolve(&correlation_id, Err(error.clone()), cx);
        }
        for queued in self.outbox.take() {
            self.drop_queued(queued, error.clone(), cx);
        }
        for waiter in self.describe.take_all() {
            cx.out.push(Output::Response {
                request: waiter.id,
                result: Err(error.clone()),
            });
        }
    }
}

/// The `nuropb_type` header of `properties`.
pub(crate) fn nuropb_type(properties: &Properties) -> Option<MessageType> {
    match properties.headers.as_ref()?.get("nuropb_type")? {
        amqp::AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes())
            .ok()
            .and_then(MessageType::parse),
        _ => None,
    }
}
