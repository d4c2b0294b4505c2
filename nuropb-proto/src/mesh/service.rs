//! The serving side of an endpoint: deliveries on the service queue, the ack table, responses.
//!
//! Every delivery is settled exactly once — acked, nacked or rejected — and answered at most once
//! (NUROPB-WIRE.md §4.1, with the quirks of §9 fixed):
//!
//! - a message that cannot be read (no headers, unsupported protocol, unknown type, not JSON, not
//!   an object, missing fields, undecryptable) is rejected once, without requeue, and answered
//!   with a `NuropbMessageError` when it has a reply-to; the channel stays open;
//! - a response on a service queue is rejected once, never left unacknowledged;
//! - an unknown, `_private` or hidden method is a `NuropbHandlingError`; a plaintext call of a
//!   method that requires encryption is refused; a method that requires authorization gets the
//!   token, or a `NuropbAuthenticationError` when there is none;
//! - `nuropb_describe` is answered by the endpoint itself;
//! - everything else goes to a handler as [`Event::Call`] or [`Event::Incoming`], and
//!   [`Endpoint::complete`] applies the [`Outcome`].

use crate::amqp::{self, AMQPValue, ChannelId, Connection};
use crate::describe::DESCRIBE_METHOD;
use crate::error::{ErrorKind, NuropbError};
use crate::mesh::call::{Call, DeliveryId, IncomingEvent};
use crate::mesh::endpoint::Endpoint;
use crate::mesh::event::{Arrival, Event};
use crate::mesh::outcome::{EventSpec, Outcome};
use crate::message::{
    CallPayload, DecodeError, Envelope, EventLayout, EventPayload, MessageType, Object, Payload,
    Publication, ResponseLayout, ResponsePayload, TransportMessage,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Instant;

/// What the endpoint remembers of a delivery while a handler works on it.
#[derive(Debug)]
pub(crate) struct InFlight {
    kind: MessageType,
    redelivered: bool,
    reply_to: Option<String>,
    correlation_id: String,
    trace_id: Option<String>,
    context: Object,
    encrypted: bool,
}

impl InFlight {
    /// Forgets the key an encrypted request was decrypted with, when it will not be answered.
    pub(crate) fn forget_key(&self, encryptor: &mut crate::crypto::Encryptor) {
        if self.encrypted {
            encryptor.forget_received(&self.correlation_id);
        }
    }
}

/// Why [`Endpoint::complete`] did nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompleteError {
    /// The delivery belongs to a connection or channel that has since closed; the broker has
    /// requeued it, so it will be delivered (and handled) again.
    #[error("the delivery's channel has closed; the broker requeues it")]
    Stale,
    /// The delivery was completed already, or never handed out.
    #[error("the delivery is not in flight")]
    Unknown,
}

/// Acks waiting to be sent: contiguous acks go out as one `multiple` ack.
#[derive(Debug, Default)]
pub(crate) struct Settlements {
    /// Unsettled delivery tags of the service consumer: `true` once acked by the endpoint.
    outstanding: BTreeMap<u64, bool>,
}

impl Settlements {
    pub(crate) fn track(&mut self, tag: u64) {
        self.outstanding.insert(tag, false);
    }

    fn ack(&mut self, tag: u64) {
        if let Some(acked) = self.outstanding.get_mut(&tag) {
            *acked = true;
        }
    }

    fn forget(&mut self, tag: u64) {
        self.outstanding.remove(&tag);
    }

    pub(crate) fn clear(&mut self) {
        self.outstanding.clear();
    }

    /// Deliveries not settled on the wire yet.
    pub(crate) fn len(&self) -> usize {
        self.outstanding.len()
    }

    /// Sends the acks: the acked run at the front as one `multiple` ack (every earlier tag is
    /// settled), the rest one by one.
    pub(crate) fn flush(&mut self, conn: &mut Connection, ch: ChannelId) {
        let mut front = None;
        let mut front_len = 0;
        while let Some((&tag, &true)) = self.outstanding.first_key_value() {
            self.outstanding.pop_first();
            front = Some(tag);
            front_len += 1;
        }
        if let Some(tag) = front {
            let _ = conn.basic_ack(ch, tag, front_len > 1);
        }
        let acked: Vec<u64> = self
            .outstanding
            .iter()
            .filter(|(_, acked)| **acked)
            .map(|(tag, _)| *tag)
            .collect();
        for tag in acked {
            self.outstanding.remove(&tag);
            let _ = conn.basic_ack(ch, tag, false);
        }
    }
}

/// How a delivery is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settle {
    Ack,
    Requeue,
    Reject,
}

impl Endpoint {
    /// A message on the service queue.
    pub(crate) fn on_service_delivery(&mut self, delivery: amqp::Delivery, now: Instant) {
        let tag = delivery.delivery_tag;
        self.settlements.track(tag);
        let envelope = match Envelope::from_properties(&delivery.properties) {
            Ok(envelope) => envelope,
            Err(error) => return self.refuse_unreadable(tag, &delivery.properties, None, error),
        };
        if envelope.kind == MessageType::Response {
            // Nobody waits for a response on a service queue: settle it, answer nothing.
            return self.settle(tag, Settle::Reject);
        }
        let kind = envelope.kind;
        let body = if envelope.encrypted
            && !(kind == MessageType::Event && delivery.body.starts_with(b"{"))
        {
            // Python services flag events emitted during encrypted requests as encrypted while
            // sending them in plaintext; such an event is read as the plaintext it is.
            let correlation_id = envelope.correlation_id.clone();
            match self.encryptor.decrypt_call(
                &correlation_id,
                &delivery.body,
                kind == MessageType::Request,
                now,
            ) {
                Ok(body) => body,
                Err(e) => {
                    let error = DecodeError::Decrypt(e);
                    return self.refuse_unreadable(tag, &delivery.properties, Some(kind), error);
                }
            }
        } else {
            delivery.body
        };
        let reply_to = envelope.reply_to.clone();
        let message = match envelope.open(&body) {
            Ok(message) => message,
            Err(error) => {
                if let Some(c) = delivery.properties.correlation_id.as_ref() {
                    self.encryptor.forget_received(c.as_str());
                }
                return self.refuse_unreadable(tag, &delivery.properties, Some(kind), error);
            }
        };
        let in_flight = InFlight {
            kind,
            redelivered: delivery.redelivered,
            reply_to,
            correlation_id: message.correlation_id.clone(),
            trace_id: message.trace_id.clone(),
            context: Object::new(),
            encrypted: message.encrypted,
        };
        match message.payload {
            Payload::Request(call) | Payload::Command(call) => {
                self.dispatch(tag, in_flight, call, now)
            }
            Payload::Event(event) => {
                let delivery = self.hand_out(
                    tag,
                    InFlight {
                        context: event.context.clone(),
                        ..in_flight
                    },
                );
                self.events.push_back(Event::Incoming(IncomingEvent::new(
                    delivery,
                    event,
                    message.trace_id,
                    message.correlation_id,
                )));
            }
            Payload::Response(_) => self.settle(tag, Settle::Reject),
        }
    }

    /// An event on the listen queue (auto-acknowledged): handed out, never completed; one that
    /// cannot be read is dropped and counted.
    pub(crate) fn on_listened(&mut self, delivery: amqp::Delivery) {
        let correlation_id = || {
            delivery
                .properties
                .correlation_id
                .as_ref()
                .map(|c| c.as_str().to_owned())
        };
        let envelope = match Envelope::from_properties(&delivery.properties) {
            Ok(envelope) => envelope,
            Err(e) => {
                return self.note_unreadable(
                    Arrival::ListenQueue,
                    correlation_id(),
                    e.to_string(),
                    false,
                );
            }
        };
        if envelope.kind != MessageType::Event {
            return;
        }
        let message = match envelope.open(&delivery.body) {
            Ok(message) => message,
            Err(e) => {
                return self.note_unreadable(
                    Arrival::ListenQueue,
                    correlation_id(),
                    e.to_string(),
                    false,
                );
            }
        };
        if let Payload::Event(event) = message.payload {
            let delivery = DeliveryId {
                epoch: self.epoch,
                tag: 0,
            };
            self.events.push_back(Event::Incoming(IncomingEvent::new(
                delivery,
                event,
                message.trace_id,
                message.correlation_id,
            )));
        }
    }

    /// Remembers a delivery until [`Endpoint::complete`].
    fn hand_out(&mut self, tag: u64, in_flight: InFlight) -> DeliveryId {
        self.in_flight.insert(tag, in_flight);
        DeliveryId {
            epoch: self.epoch,
            tag,
        }
    }

    /// Checks a call against the declared methods and hands it to a handler.
    fn dispatch(&mut self, tag: u64, mut in_flight: InFlight, call: CallPayload, now: Instant) {
        in_flight.context = call.context.clone();
        let service = self.config.service.as_ref();
        let describe = call.method == DESCRIBE_METHOD;
        let spec = service
            .and_then(|s| s.spec.find(&call.method))
            .filter(|m| !m.hidden);
        if describe {
            let result = match service {
                Some(s) => serde_json::to_value(s.spec.describe(self.public_key_pem.as_deref()))
                    .unwrap_or(Value::Null),
                None => Value::Null,
            };
            return self.finish(tag, in_flight, Outcome::Ok(result), Vec::new(), now);
        }
        let refusal = match spec {
            None => Some(NuropbError::new(
                ErrorKind::Handling,
                format!("Unknown method {}", call.method),
            )),
            Some(_) if call.method.starts_with('_') => Some(NuropbError::new(
                ErrorKind::Handling,
                format!("Unknown method {}", call.method),
            )),
            Some(method) if method.requires_encryption && !in_flight.encrypted => {
                Some(NuropbError::new(
                    ErrorKind::Handling,
                    format!("Method {} requires encryption", call.method),
                ))
            }
            _ => None,
        };
        if let Some(error) = refusal {
            return self.finish(tag, in_flight, Outcome::Err(error), Vec::new(), now);
        }
        let token = match spec {
            Some(method) if method.authorize => match call.context.get(&method.context_token_key) {
                Some(Value::String(token)) => Some(token.clone()),
                _ => {
                    let error = NuropbError::new(
                        ErrorKind::Authentication,
                        format!("the context has no '{}' token", method.context_token_key),
                    );
                    return self.finish(tag, in_flight, Outcome::Err(error), Vec::new(), now);
                }
            },
            _ => None,
        };
        let kind = in_flight.kind;
        let redelivered = in_flight.redelivered;
        let encrypted = in_flight.encrypted;
        let trace_id = in_flight.trace_id.clone();
        let correlation_id = in_flight.correlation_id.clone();
        let delivery = self.hand_out(tag, in_flight);
        self.events.push_back(Event::Call(Call {
            delivery,
            kind,
            method: call.method,
            params: call.params,
            context: call.context,
            token,
            trace_id,
            correlation_id,
            encrypted,
            redelivered,
        }));
    }

    /// Finishes a delivery handed out as [`Event::Call`] or [`Event::Incoming`]: settles it and
    /// sends the response and events `outcome` calls for (see [`Outcome`]). `events` are those the
    /// handler added through its call context: published after success, dropped otherwise.
    pub fn complete(
        &mut self,
        delivery: DeliveryId,
        outcome: Outcome,
        events: Vec<EventSpec>,
        now: Instant,
    ) -> Result<(), CompleteError> {
        self.last_now = now;
        if delivery.epoch != self.epoch {
            return Err(CompleteError::Stale);
        }
        let Some(in_flight) = self.in_flight.remove(&delivery.tag) else {
            return Err(CompleteError::Unknown);
        };
        self.finish(delivery.tag, in_flight, outcome, events, now);
        Ok(())
    }

    /// Applies the ack table to a delivery that is no longer in flight.
    fn finish(
        &mut self,
        tag: u64,
        in_flight: InFlight,
        outcome: Outcome,
        mut events: Vec<EventSpec>,
        now: Instant,
    ) {
        let is_request = in_flight.kind == MessageType::Request;
        let (settle, answer) = match outcome {
            Outcome::Ok(result) => (Settle::Ack, Some((Ok(result), ResponseLayout::Returned))),
            Outcome::Success {
                result,
                events: success_events,
            } => {
                events.splice(0..0, success_events);
                (Settle::Ack, Some((Ok(result), ResponseLayout::Raised)))
            }
            Outcome::Err(error) => {
                events.clear();
                (Settle::Reject, Some((Err(error), ResponseLayout::Raised)))
            }
            Outcome::CallAgain(_) if !in_flight.redelivered => {
                events.clear();
                (Settle::Requeue, None)
            }
            Outcome::CallAgain(_) => {
                events.clear();
                let error = NuropbError::new(
                    ErrorKind::CallAgainReject,
                    format!(
                        "Rejecting second call again request for trace_id: {}, correlation_id: {}",
                        in_flight.trace_id.as_deref().unwrap_or("None"),
                        in_flight.correlation_id
                    ),
                );
                (Settle::Reject, Some((Err(error), ResponseLayout::Raised)))
            }
        };
        self.settle(tag, settle);
        match (answer, is_request) {
            (Some((result, layout)), true) => self.answer(&in_flight, result, layout, now),
            _ => {
                if in_flight.encrypted {
                    self.encryptor.forget_received(&in_flight.correlation_id);
                }
            }
        }
        for event in events {
            self.emit(&in_flight, event);
        }
    }

    fn settle(&mut self, tag: u64, settle: Settle) {
        let Some(ch) = self.channel else { return };
        match settle {
            Settle::Ack => self.settlements.ack(tag),
            Settle::Requeue => {
                self.settlements.forget(tag);
                let _ = self.conn.basic_nack(ch, tag, false, true);
            }
            Settle::Reject => {
                self.settlements.forget(tag);
                let _ = self.conn.basic_reject(ch, tag, false);
            }
        }
    }

    /// Sends the one response to a request, encrypted when the request was.
    fn answer(
        &mut self,
        in_flight: &InFlight,
        result: Result<Value, NuropbError>,
        layout: ResponseLayout,
        now: Instant,
    ) {
        let Some(reply_to) = in_flight.reply_to.clone() else {
            return;
        };
        let (result, error) = match result {
            Ok(value) => (value, None),
            Err(error) => (Value::Null, Some(error)),
        };
        let payload = Payload::Response(ResponsePayload {
            result,
            error,
            correlation_id: in_flight.correlation_id.clone(),
            trace_id: in_flight.trace_id.clone(),
            context: in_flight.context.clone(),
            warning: None,
            reply_to,
            layout,
        });
        let mut message = TransportMessage::new(payload);
        let json = message.payload.to_json();
        let body = if in_flight.encrypted {
            let unix = self.unix_time(now);
            match self
                .encryptor
                .encrypt_response(&in_flight.correlation_id, &json, unix, now)
            {
                Ok(body) => {
                    message.encrypted = true;
                    body
                }
                // The key expired: answer in plaintext with an error rather than not at all.
                Err(e) => {
                    if let Payload::Response(r) = &mut message.payload {
                        r.result = Value::Null;
                        r.error = Some(NuropbError::new(ErrorKind::Message, e.to_string()));
                        r.layout = ResponseLayout::Raised;
                    }
                    message.payload.to_json()
                }
            }
        } else {
            json
        };
        self.publish_now(&message, body);
    }

    /// Publishes an event a handler asked for, under the delivery's correlation id, trace id and
    /// context; never flagged encrypted.
    fn emit(&mut self, in_flight: &InFlight, spec: EventSpec) {
        let message = TransportMessage::new(Payload::Event(EventPayload {
            topic: spec.topic,
            event: spec.event,
            context: in_flight.context.clone(),
            trace_id: in_flight.trace_id.clone(),
            correlation_id: in_flight.correlation_id.clone(),
            target: spec.target,
            layout: EventLayout::Emitted,
        }));
        let body = message.payload.to_json();
        self.publish_now(&message, body);
    }

    /// Publishes a response or event on the current channel (they answer deliveries of this
    /// channel, so they never wait in the outbox).
    fn publish_now(&mut self, message: &TransportMessage, body: Vec<u8>) {
        let Ok(publication) = Publication::new(message, &self.config.names.exchanges, "", body)
        else {
            return; // a reply-to or topic longer than AMQP allows cannot be routed
        };
        let Some(ch) = self.channel else { return };
        let publish = amqp::Publish {
            exchange: publication.exchange.as_str(),
            routing_key: publication.routing_key.as_str(),
            mandatory: false,
            immediate: false,
        };
        let _ =
            self.conn
                .basic_publish_raw(ch, &publish, &publication.properties, &publication.body);
    }

    /// Rejects a message that cannot be read, once, and answers it when it has a reply-to and
    /// a correlation id; [`Event::Unreadable`] tells the adapter.
    pub(crate) fn refuse_unreadable(
        &mut self,
        tag: u64,
        properties: &amqp::Properties,
        kind: Option<MessageType>,
        error: DecodeError,
    ) {
        self.settle(tag, Settle::Reject);
        let correlation_id = properties
            .correlation_id
            .as_ref()
            .map(|c| c.as_str().to_owned());
        let reply_to = properties
            .reply_to
            .as_ref()
            .map(|r| r.as_str().to_owned())
            .filter(|r| !r.is_empty());
        let answerable = !matches!(
            kind,
            Some(MessageType::Event | MessageType::Response | MessageType::Command)
        );
        let answered = match (reply_to, &correlation_id) {
            (Some(reply_to), Some(correlation_id)) if answerable => {
                let trace_id = properties
                    .headers
                    .as_ref()
                    .and_then(|h| match h.get("trace_id") {
                        Some(AMQPValue::LongString(s)) => {
                            std::str::from_utf8(s.as_bytes()).ok().map(str::to_owned)
                        }
                        _ => None,
                    });
                let in_flight = InFlight {
                    kind: MessageType::Request,
                    redelivered: false,
                    reply_to: Some(reply_to),
                    correlation_id: correlation_id.clone(),
                    trace_id,
                    context: Object::new(),
                    encrypted: false,
                };
                self.answer(
                    &in_flight,
                    Err(error.to_error()),
                    ResponseLayout::Raised,
                    self.last_now,
                );
                true
            }
            _ => false,
        };
        self.note_unreadable(
            Arrival::ServiceQueue,
            correlation_id,
            error.to_string(),
            answered,
        );
    }
}
