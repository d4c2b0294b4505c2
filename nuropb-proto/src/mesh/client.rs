//! The calling side of an endpoint: requests, commands, events, describe, and their fate.
//!
//! Responses are matched by the AMQP `correlation_id` property; a response nobody waits for —
//! Python services send a second one after errors — is dropped. Every request ends in exactly one
//! [`Event::Response`]: the service's answer, or an error the endpoint found itself (deadline
//! passed, not routable, connection lost).

use crate::amqp::{self, Properties};
use crate::crypto::keys;
use crate::describe::{DESCRIBE_METHOD, ServiceDescription};
use crate::error::{ErrorKind, NuropbError};
use crate::mesh::endpoint::{Endpoint, Phase};
use crate::mesh::event::{Arrival, Event, RequestId};
use crate::message::{
    CallPayload, Envelope, EventLayout, EventPayload, MessageType, Object, Payload, Publication,
    TransportMessage,
};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A call of a method on a service: a request, or a command.
///
/// ```
/// use nuropb_proto::mesh::Request;
/// use serde_json::json;
/// let request = Request::new("orders", "place")
///     .params(json!({"item": "tea"}))
///     .context(json!({"Authorization": "Bearer abc"}))
///     .timeout(std::time::Duration::from_secs(5));
/// assert_eq!(request.params["item"], "tea");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The service.
    pub service: String,
    /// The method.
    pub method: String,
    /// Keyword parameters.
    pub params: Object,
    /// Context, echoed in the response (and where a token travels).
    pub context: Object,
    /// Trace id.
    pub trace_id: Option<String>,
    /// How long to wait for the response (and, for messages sent while disconnected, for the
    /// connection); the endpoint's default when `None`.
    pub timeout: Option<Duration>,
    /// How long the message may wait in the service's queue (AMQP expiration); the timeout when
    /// `None`, so that nobody handles a request its caller gave up on.
    pub ttl: Option<Duration>,
    /// Whether to encrypt the call (and its response) with the service's public key.
    pub encrypted: bool,
    /// The correlation id to send it with; the endpoint makes one (32 hex digits) when `None`.
    pub correlation_id: Option<String>,
}

fn object(value: Value) -> Object {
    match value {
        Value::Object(o) => o,
        Value::Null => Object::new(),
        other => {
            let mut o = Object::new();
            o.insert("value".to_owned(), other);
            o
        }
    }
}

impl Request {
    /// A call of `method` on `service` with no parameters and no context.
    pub fn new(service: impl Into<String>, method: impl Into<String>) -> Self {
        Request {
            service: service.into(),
            method: method.into(),
            params: Object::new(),
            context: Object::new(),
            trace_id: None,
            timeout: None,
            ttl: None,
            encrypted: false,
            correlation_id: None,
        }
    }

    /// Sets the parameters (a JSON object; `null` is none).
    pub fn params(mut self, params: Value) -> Self {
        self.params = object(params);
        self
    }

    /// Sets the context (a JSON object; `null` is none).
    pub fn context(mut self, context: Value) -> Self {
        self.context = object(context);
        self
    }

    /// Sets the trace id.
    pub fn trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }

    /// Sets the timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the message ttl.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Encrypts the call.
    pub fn encrypted(mut self) -> Self {
        self.encrypted = true;
        self
    }

    /// Sets the correlation id (unique among this participant's requests in flight).
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }
}

/// An event to publish.
///
/// ```
/// use nuropb_proto::mesh::OutgoingEvent;
/// use serde_json::json;
/// let event = OutgoingEvent::new("orders.placed", json!({"id": 7})).context(json!({"user": "u1"}));
/// assert_eq!(event.topic, "orders.placed");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingEvent {
    /// The topic.
    pub topic: String,
    /// The event.
    pub event: Value,
    /// Publisher context.
    pub context: Object,
    /// Trace id.
    pub trace_id: Option<String>,
    /// The correlation id; the endpoint makes one when `None`.
    pub correlation_id: Option<String>,
}

impl OutgoingEvent {
    /// `event` on `topic`, with no context.
    pub fn new(topic: impl Into<String>, event: Value) -> Self {
        OutgoingEvent {
            topic: topic.into(),
            event,
            context: Object::new(),
            trace_id: None,
            correlation_id: None,
        }
    }

    /// Sets the context (a JSON object; `null` is none).
    pub fn context(mut self, context: Value) -> Self {
        self.context = object(context);
        self
    }

    /// Sets the trace id.
    pub fn trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }
}

/// A request waiting for its response.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) id: RequestId,
    pub(crate) deadline: Instant,
    pub(crate) service: String,
    pub(crate) method: String,
    pub(crate) encrypted: bool,
    /// Published on the current connection (so lost with it), rather than waiting in the outbox.
    pub(crate) sent: bool,
    /// Why a response that came for it could not be read: said if the deadline passes.
    pub(crate) unreadable: Option<String>,
}

/// A message waiting for the endpoint to be ready.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) correlation_id: String,
    pub(crate) kind: MessageType,
    pub(crate) publication: Publication,
    pub(crate) deadline: Instant,
}

/// An encrypted request waiting for its service's public key.
#[derive(Debug)]
pub(crate) struct AwaitingKey {
    pub(crate) id: RequestId,
    pub(crate) request: Request,
    pub(crate) correlation_id: String,
    pub(crate) deadline: Instant,
}

impl Endpoint {
    /// Sends a request; its [`Event::Response`] comes with the returned id, by its deadline.
    ///
    /// An encrypted request to a service whose public key is not known yet describes the service
    /// first. Refused at once when too many requests are pending or a name is too long.
    pub fn request(&mut self, request: Request, now: Instant) -> Result<RequestId, NuropbError> {
        self.last_now = now;
        if self.phase == Phase::Stopped || self.phase == Phase::Closing {
            return Err(stopped());
        }
        if self.pending_requests() >= self.config.max_pending_requests {
            return Err(NuropbError::new(
                ErrorKind::Transport,
                format!(
                    "{} requests are pending already",
                    self.config.max_pending_requests
                ),
            ));
        }
        let correlation_id = match request.correlation_id.clone() {
            Some(given) if self.correlation_in_use(&given) => {
                return Err(NuropbError::new(
                    ErrorKind::Message,
                    format!("a request with correlation id {given} is in flight already"),
                ));
            }
            Some(given) => given,
            None => self.ids.next_id(),
        };
        let id = self.next_request_id();
        let deadline = now + request.timeout.unwrap_or(self.config.default_timeout);
        if request.encrypted && !self.encryptor.has_public_key(&request.service) {
            let service = request.service.clone();
            let first = !self.awaiting_key.contains_key(&service);
            self.awaiting_key
                .entry(service.clone())
                .or_default()
                .push(AwaitingKey {
                    id,
                    request,
                    correlation_id,
                    deadline,
                });
            if first {
                self.describe_for_key(&service, deadline, now)?;
            }
            return Ok(id);
        }
        self.send_request(id, request, correlation_id, deadline, now)?;
        Ok(id)
    }

    /// Whether a pending request, or one waiting for its service's key, has `correlation_id`.
    fn correlation_in_use(&self, correlation_id: &str) -> bool {
        self.pending.contains_key(correlation_id)
            || self
                .awaiting_key
                .values()
                .flatten()
                .any(|waiting| waiting.correlation_id == correlation_id)
    }

    fn send_request(
        &mut self,
        id: RequestId,
        request: Request,
        correlation_id: String,
        deadline: Instant,
        now: Instant,
    ) -> Result<(), NuropbError> {
        let ttl = request
            .ttl
            .unwrap_or(deadline.saturating_duration_since(now));
        let encrypted = request.encrypted;
        let (service, method) = (request.service.clone(), request.method.clone());
        let publication =
            self.call_publication(MessageType::Request, request, &correlation_id, ttl, now)?;
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
        self.deadlines
            .insert((deadline, id), correlation_id.clone());
        self.send(Queued {
            correlation_id,
            kind: MessageType::Request,
            publication,
            deadline,
        });
        Ok(())
    }

    /// Sends a command (no response); returns its correlation id. An unroutable command comes
    /// back as [`Event::NotDelivered`].
    pub fn command(&mut self, request: Request, now: Instant) -> Result<String, NuropbError> {
        self.last_now = now;
        if self.phase == Phase::Stopped || self.phase == Phase::Closing {
            return Err(stopped());
        }
        let correlation_id = request
            .correlation_id
            .clone()
            .unwrap_or_else(|| self.ids.next_id());
        let timeout = request.timeout.unwrap_or(self.config.default_timeout);
        let ttl = request.ttl.unwrap_or(timeout);
        let publication =
            self.call_publication(MessageType::Command, request, &correlation_id, ttl, now)?;
        self.send(Queued {
            correlation_id: correlation_id.clone(),
            kind: MessageType::Command,
            publication,
            deadline: now + timeout,
        });
        Ok(correlation_id)
    }

    /// Publishes an event; returns its correlation id.
    pub fn publish_event(
        &mut self,
        event: OutgoingEvent,
        now: Instant,
    ) -> Result<String, NuropbError> {
        self.last_now = now;
        if self.phase == Phase::Stopped || self.phase == Phase::Closing {
            return Err(stopped());
        }
        let correlation_id = event.correlation_id.unwrap_or_else(|| self.ids.next_id());
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
        let publication = Publication::plaintext(&message, &self.config.names.exchanges, "")
            .map_err(|e| NuropbError::new(ErrorKind::Message, e.to_string()))?;
        self.send(Queued {
            correlation_id: correlation_id.clone(),
            kind: MessageType::Event,
            publication,
            deadline: now + self.config.default_timeout,
        });
        Ok(correlation_id)
    }

    /// Asks `service` to describe itself; the [`Event::Response`] carries the description, which
    /// is also kept (see [`Endpoint::description`]) with its public key.
    pub fn describe(&mut self, service: &str, now: Instant) -> Result<RequestId, NuropbError> {
        self.request(
            Request::new(service, DESCRIBE_METHOD).timeout(Duration::from_secs(60)),
            now,
        )
    }

    fn describe_for_key(
        &mut self,
        service: &str,
        deadline: Instant,
        now: Instant,
    ) -> Result<(), NuropbError> {
        let id = self.next_request_id();
        let correlation_id = self.ids.next_id();
        let request =
            Request::new(service, DESCRIBE_METHOD).timeout(deadline.saturating_duration_since(now));
        self.internal.insert(id);
        self.send_request(id, request, correlation_id, deadline, now)
    }

    /// The last description of `service` received, if any.
    pub fn description(&self, service: &str) -> Option<&ServiceDescription> {
        self.descriptions.get(service)
    }

    /// Whether `method` of `service` requires encryption, as far as a description says.
    pub fn requires_encryption(&self, service: &str, method: &str) -> Option<bool> {
        self.descriptions
            .get(service)
            .map(|d| d.requires_encryption(method))
    }

    /// Whether the public key of `service` is known.
    pub fn has_public_key(&self, service: &str) -> bool {
        self.encryptor.has_public_key(service)
    }

    /// Builds the publication of a request or command, encrypting it if asked.
    fn call_publication(
        &mut self,
        kind: MessageType,
        request: Request,
        correlation_id: &str,
        ttl: Duration,
        now: Instant,
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
            let unix = self.unix_time(now);
            self.encryptor
                .encrypt_call(
                    &service,
                    correlation_id,
                    &json,
                    kind == MessageType::Request,
                    unix,
                    now,
                )
                .map_err(|e| NuropbError::new(ErrorKind::Message, e.to_string()))?
        } else {
            json
        };
        Publication::new(
            &message,
            &self.config.names.exchanges,
            &self.response_queue,
            body,
        )
        .map_err(|e| NuropbError::new(ErrorKind::Message, e.to_string()))
    }

    /// Publishes now when ready, else keeps it for later (bounded).
    pub(crate) fn send(&mut self, queued: Queued) {
        if self.phase == Phase::Ready && self.publish(&queued) {
            if let Some(pending) = self.pending.get_mut(&queued.correlation_id) {
                pending.sent = true;
            }
            return;
        }
        if self.outbox.len() >= self.config.max_outbox {
            let error = NuropbError::new(ErrorKind::Transport, "the outbox is full: not connected");
            return self.drop_queued(queued, error);
        }
        self.outbox.push_back(queued);
    }

    /// Publishes on the channel; false when the channel refuses.
    pub(crate) fn publish(&mut self, queued: &Queued) -> bool {
        let Some(ch) = self.channel else { return false };
        let p = &queued.publication;
        let publish = amqp::Publish {
            exchange: p.exchange.as_str(),
            routing_key: p.routing_key.as_str(),
            mandatory: p.mandatory,
            immediate: false,
        };
        self.conn
            .basic_publish_raw(ch, &publish, &p.properties, &p.body)
            .is_ok()
    }

    /// Sends what waited for the connection.
    pub(crate) fn flush_outbox(&mut self, now: Instant) {
        let waiting = std::mem::take(&mut self.outbox);
        for queued in waiting {
            if queued.kind == MessageType::Request
                && !self.pending.contains_key(&queued.correlation_id)
            {
                continue; // its deadline passed
            }
            if queued.deadline <= now {
                let error = NuropbError::new(ErrorKind::Timeout, "not sent before its deadline");
                self.drop_queued(queued, error);
                continue;
            }
            self.send(queued);
        }
    }

    /// Reports a message that will not be sent.
    fn drop_queued(&mut self, queued: Queued, error: NuropbError) {
        match queued.kind {
            MessageType::Request => self.resolve(&queued.correlation_id, Err(error)),
            kind => self.events.push_back(Event::NotDelivered {
                correlation_id: queued.correlation_id,
                kind,
                error,
            }),
        }
    }

    /// Ends the pending request `correlation_id` with `result`: its one and only response.
    pub(crate) fn resolve(&mut self, correlation_id: &str, result: Result<Value, NuropbError>) {
        let Some(pending) = self.pending.remove(correlation_id) else {
            return;
        };
        self.deadlines.remove(&(pending.deadline, pending.id));
        if pending.encrypted {
            self.encryptor.forget_sent(correlation_id);
        }
        if pending.method == DESCRIBE_METHOD {
            self.on_description(&pending.service, &result);
        }
        if !self.internal.remove(&pending.id) {
            self.events.push_back(Event::Response {
                request: pending.id,
                result,
            });
        }
    }

    /// A describe response: keep the description and its key; send the requests that waited
    /// for the key (or fail them).
    fn on_description(&mut self, service: &str, result: &Result<Value, NuropbError>) {
        let outcome = match result {
            Ok(value) => match serde_json::from_value::<ServiceDescription>(value.clone()) {
                Ok(description) => {
                    if let Some(pem) = &description.public_key {
                        match keys::public_key_from_pem(pem) {
                            Ok(key) => self.encryptor.add_public_key(service, key),
                            Err(e) => log_bad_key(service, &e.to_string()),
                        }
                    }
                    self.descriptions.insert(service.to_owned(), description);
                    Ok(())
                }
                Err(e) => Err(NuropbError::new(
                    ErrorKind::Message,
                    format!("bad description from {service}: {e}"),
                )),
            },
            Err(e) => Err(e.clone()),
        };
        let Some(waiting) = self.awaiting_key.remove(service) else {
            return;
        };
        let now = self.last_now;
        for waiter in waiting {
            let error = match &outcome {
                Err(e) => Some(e.clone()),
                Ok(()) if !self.encryptor.has_public_key(service) => Some(NuropbError::new(
                    ErrorKind::Message,
                    format!("Service public key not found for service: {service}"),
                )),
                Ok(()) => None,
            };
            match error {
                Some(error) => self.events.push_back(Event::Response {
                    request: waiter.id,
                    result: Err(error),
                }),
                None => {
                    // The deadline stands; the ttl is what is left of it.
                    if let Err(error) = self.send_request(
                        waiter.id,
                        waiter.request,
                        waiter.correlation_id,
                        waiter.deadline,
                        now,
                    ) {
                        self.events.push_back(Event::Response {
                            request: waiter.id,
                            result: Err(error),
                        });
                    }
                }
            }
        }
    }

    /// A message on the response queue. One that cannot be read fails no request: it is
    /// dropped and counted, and the request it names (if any) waits for its real answer or its
    /// deadline, whose error then says what came instead.
    pub(crate) fn on_response(&mut self, delivery: amqp::Delivery, now: Instant) {
        let envelope = match Envelope::from_properties(&delivery.properties) {
            Ok(envelope) => envelope,
            Err(e) => {
                let correlation_id = delivery
                    .properties
                    .correlation_id
                    .as_ref()
                    .map(|c| c.as_str().to_owned());
                return self.drop_response(correlation_id, e.to_string());
            }
        };
        if envelope.kind != MessageType::Response {
            return;
        }
        let correlation_id = envelope.correlation_id.clone();
        if !self.pending.contains_key(&correlation_id) {
            return; // unpaired or duplicate
        }
        let body = if envelope.encrypted && !delivery.body.starts_with(b"{") {
            match self
                .encryptor
                .decrypt_response(&correlation_id, &delivery.body, now)
            {
                Ok(body) => body,
                Err(e) => return self.drop_response(Some(correlation_id), e.to_string()),
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
            Err(e) => return self.drop_response(Some(correlation_id), e.to_string()),
        };
        self.resolve(&correlation_id, result);
    }

    /// Drops a response that cannot be read, noting why on the request it names.
    pub(crate) fn drop_response(&mut self, correlation_id: Option<String>, reason: String) {
        if let Some(pending) = correlation_id
            .as_ref()
            .and_then(|c| self.pending.get_mut(c))
        {
            pending.unreadable.get_or_insert_with(|| reason.clone());
        }
        self.note_unreadable(Arrival::ResponseQueue, correlation_id, reason, false);
    }

    /// A message the broker could not route.
    pub(crate) fn on_returned(&mut self, returned: amqp::Returned) {
        let Some(correlation_id) = returned
            .properties
            .correlation_id
            .as_ref()
            .map(|c| c.as_str().to_owned())
        else {
            return;
        };
        let kind = nuropb_type(&returned.properties);
        match kind {
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
                self.resolve(&correlation_id, Err(error));
            }
            Some(kind @ (MessageType::Command | MessageType::Event)) => {
                let error = NuropbError::new(
                    ErrorKind::NotDelivered,
                    format!(
                        "{kind} not delivered: {} {} (routing key {})",
                        returned.reply_code, returned.reply_text, returned.routing_key
                    ),
                );
                self.events.push_back(Event::NotDelivered {
                    correlation_id,
                    kind,
                    error,
                });
            }
            _ => {}
        }
    }

    /// Fails requests whose deadline passed, and queued messages past theirs.
    pub(crate) fn expire(&mut self, now: Instant) {
        self.last_now = now;
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, id), correlation_id) = entry.remove_entry();
            if let Some(pending) = self.pending.get(&correlation_id)
                && pending.id == id
            {
                let error = NuropbError::new(
                    ErrorKind::Timeout,
                    match &pending.unreadable {
                        None => "no response before the request's deadline".to_owned(),
                        Some(why) => format!(
                            "no response before the request's deadline (one that came could \
                             not be read: {why})"
                        ),
                    },
                );
                self.resolve(&correlation_id, Err(error));
            }
        }
        if self.outbox.iter().any(|q| q.deadline <= now) {
            let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.outbox)
                .into_iter()
                .partition(|q| q.deadline <= now);
            self.outbox = kept.into();
            for queued in expired {
                let error = NuropbError::new(ErrorKind::Timeout, "not sent before its deadline");
                self.drop_queued(queued, error);
            }
        }
        let services: Vec<String> = self.awaiting_key.keys().cloned().collect();
        for service in services {
            let Some(waiting) = self.awaiting_key.get_mut(&service) else {
                continue;
            };
            let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(waiting)
                .into_iter()
                .partition(|w| w.deadline <= now);
            *waiting = kept;
            if waiting.is_empty() {
                self.awaiting_key.remove(&service);
            }
            for waiter in expired {
                self.events.push_back(Event::Response {
                    request: waiter.id,
                    result: Err(NuropbError::new(
                        ErrorKind::Timeout,
                        "no public key for the service before the request's deadline",
                    )),
                });
            }
        }
    }

    /// Fails the requests published on the connection or channel that was lost.
    pub(crate) fn fail_sent(&mut self, reason: &str) {
        let lost: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.sent)
            .map(|(c, _)| c.clone())
            .collect();
        for correlation_id in lost {
            let error = NuropbError::new(
                ErrorKind::Transport,
                format!("{reason}; the request may or may not have been handled"),
            );
            self.resolve(&correlation_id, Err(error));
        }
    }

    /// Fails everything: the endpoint stopped.
    pub(crate) fn fail_all(&mut self, reason: &str) {
        let error = NuropbError::new(ErrorKind::Transport, format!("endpoint stopped: {reason}"));
        let all: Vec<String> = self.pending.keys().cloned().collect();
        for correlation_id in all {
            self.resolve(&correlation_id, Err(error.clone()));
        }
        for queued in std::mem::take(&mut self.outbox) {
            self.drop_queued(queued, error.clone());
        }
        for waiter in std::mem::take(&mut self.awaiting_key)
            .into_values()
            .flatten()
        {
            self.events.push_back(Event::Response {
                request: waiter.id,
                result: Err(error.clone()),
            });
        }
    }
}

fn stopped() -> NuropbError {
    NuropbError::new(ErrorKind::Transport, "the endpoint has stopped")
}

fn log_bad_key(_service: &str, _error: &str) {
    // A description with an unreadable key: encrypted calls to it fail with "no public key".
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
