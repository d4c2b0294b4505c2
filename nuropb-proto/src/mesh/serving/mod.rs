//! The serving side of an endpoint: deliveries on the service queue, the ack table, responses.
//!
//! Every delivery is settled exactly once — acked, nacked or rejected — and answered at most once
//! (NUROPB-WIRE.md §4.1, with the quirks of §9 fixed):
//!
//! - a message that cannot be read (its content header, no headers, unsupported protocol, unknown
//!   type, not JSON, not an object, missing fields, undecryptable, a body over the limit) is
//!   rejected once, without requeue, and answered with a `NuropbMessageError` when it has a
//!   reply-to and a correlation id; the channel stays open;
//! - a response on a service queue is rejected once, never left unacknowledged;
//! - an unknown, `_private` or hidden method is a `NuropbHandlingError`; a plaintext call of a
//!   method that requires encryption is refused; a method that requires authorization gets the
//!   token, or a `NuropbAuthenticationError` when there is none;
//! - `nuropb_describe` is answered by the endpoint itself;
//! - everything else goes to a handler as [`Output::Call`] or [`Output::Incoming`], and
//!   [`Endpoint::complete`](crate::mesh::Endpoint::complete) applies the [`Outcome`].
//!
//! `settlements`: the acks held back until the next write.

mod settlements;

use crate::amqp::{self, AMQPValue};
use crate::describe::{DESCRIBE_METHOD, ServiceSpec};
use crate::error::{ErrorKind, NuropbError};
use crate::mesh::call::{Call, DeliveryId, IncomingEvent};
use crate::mesh::cx::Cx;
use crate::mesh::outcome::{EventSpec, Outcome};
use crate::mesh::output::{Arrival, Output};
use crate::message::{
    CallPayload, DecodeError, Envelope, EventLayout, EventPayload, Exchanges, MessageType, Object,
    Payload, Publication, ResponseLayout, ResponsePayload, TransportMessage,
};
use serde_json::Value;
use settlements::Settlements;
use std::collections::HashMap;

/// What the endpoint remembers of a delivery while a handler works on it.
#[derive(Debug)]
struct InFlight {
    kind: MessageType,
    redelivered: bool,
    reply_to: Option<String>,
    correlation_id: String,
    trace_id: Option<String>,
    context: Object,
    encrypted: bool,
}

/// Why [`Endpoint::complete`](crate::mesh::Endpoint::complete) did nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompleteError {
    /// The delivery belongs to a connection or channel that has since closed; the broker has
    /// requeued it, so it will be delivered (and handled) again.
    #[error("the delivery's channel has closed; the broker requeues it")]
    Stale,
    /// The delivery was completed already, or never handed out.
    #[error("the delivery is not in flight")]
    Unknown,
}

/// How a delivery is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settle {
    Ack,
    Requeue,
    Reject,
}

/// Deliveries being handled and not yet settled, on the current channel.
#[derive(Debug)]
pub(crate) struct Serving {
    /// The service declared, for a service.
    spec: Option<ServiceSpec>,
    /// Its public key, in describe's form.
    public_key_pem: Option<String>,
    exchanges: Exchanges,
    /// Counts channels: deliveries of an earlier one are stale.
    epoch: u64,
    /// Deliveries handed to handlers, by delivery tag (of the current epoch).
    in_flight: HashMap<u64, InFlight>,
    settlements: Settlements,
}

impl Serving {
    pub(crate) fn new(
        spec: Option<ServiceSpec>,
        public_key_pem: Option<String>,
        exchanges: Exchanges,
    ) -> Self {
        Serving {
            spec,
            public_key_pem,
            exchanges,
            epoch: 0,
            in_flight: HashMap::new(),
            settlements: Settlements::default(),
        }
    }

    /// Deliveries handed out and not completed.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Deliveries not settled on the wire (acks waiting to be sent included).
    pub(crate) fn unsettled(&self) -> usize {
        self.settlements.len()
    }

    /// A channel opened: what is delivered on it is of a new epoch.
    pub(crate) fn new_channel(&mut self) {
        self.epoch += 1;
    }

    /// The channel is gone: the broker requeues its deliveries, and whoever handles them again
    /// decrypts them again.
    pub(crate) fn lose_channel(&mut self, cx: &mut Cx<'_>) {
        self.epoch += 1;
        for in_flight in std::mem::take(&mut self.in_flight).into_values() {
            if in_flight.encrypted {
                cx.crypto.forget_received(&in_flight.correlation_id);
            }
        }
        self.settlements.clear();
    }

    /// Sends the acks held back, contiguous ones as one.
    pub(crate) fn flush(&mut self, cx: &mut Cx<'_>) {
        if let Some(session) = cx.session.as_deref_mut()
            && let Some(ch) = session.channel
        {
            self.settlements.flush(&mut session.conn, ch);
        }
    }

    /// Shutting down: what handlers did not finish goes back to the queue now, for another
    /// instance (requeued, not rejected; unanswered).
    pub(crate) fn requeue_all(&mut self, cx: &mut Cx<'_>) {
        let tags: Vec<u64> = self.in_flight.keys().copied().collect();
        for tag in tags {
            if let Some(in_flight) = self.in_flight.remove(&tag) {
                if in_flight.encrypted {
                    cx.crypto.forget_received(&in_flight.correlation_id);
                }
                self.settle(tag, Settle::Requeue, cx);
            }
        }
        self.flush(cx);
    }

    // ----- deliveries -----

    /// A message on the service queue.
    pub(crate) fn on_delivery(&mut self, delivery: amqp::Delivery, cx: &mut Cx<'_>) {
        let tag = delivery.delivery_tag;
        self.settlements.track(tag);
        let envelope = match Envelope::from_properties(&delivery.properties) {
            Ok(envelope) => envelope,
            Err(error) => return self.refuse(tag, &delivery.properties, None, error, cx),
        };
        if envelope.kind == MessageType::Response {
            // Nobody waits for a response on a service queue: settle it, answer nothing.
            return self.settle(tag, Settle::Reject, cx);
        }
        let kind = envelope.kind;
        let body = if envelope.encrypted
            && !(kind == MessageType::Event && delivery.body.starts_with(b"{"))
        {
            // Python services flag events emitted during encrypted requests as encrypted while
            // sending them in plaintext; such an event is read as the plaintext it is.
            let correlation_id = envelope.correlation_id.clone();
            match cx.crypto.decrypt_call(
                &correlation_id,
                &delivery.body,
                kind == MessageType::Request,
                cx.now,
            ) {
                Ok(body) => body,
                Err(e) => {
                    let error = DecodeError::Decrypt(e);
                    return self.refuse(tag, &delivery.properties, Some(kind), error, cx);
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
                    cx.crypto.forget_received(c.as_str());
                }
                return self.refuse(tag, &delivery.properties, Some(kind), error, cx);
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
                self.dispatch(tag, in_flight, call, cx)
            }
            Payload::Event(event) => {
                let delivery = self.hand_out(
                    tag,
                    InFlight {
                        context: event.context.clone(),
                        ..in_flight
                    },
                );
                cx.out.push(Output::Incoming(IncomingEvent::new(
                    delivery,
                    event,
                    message.trace_id,
                    message.correlation_id,
                )));
            }
            Payload::Response(_) => self.settle(tag, Settle::Reject, cx),
        }
    }

    /// A message on the service queue whose content could not be read.
    pub(crate) fn on_unreadable(
        &mut self,
        tag: u64,
        properties: &amqp::Properties,
        error: amqp::ContentError,
        cx: &mut Cx<'_>,
    ) {
        self.settlements.track(tag);
        let kind = crate::mesh::calls::nuropb_type(properties);
        self.refuse(tag, properties, kind, error.into(), cx);
    }

    /// An event on the listen queue (auto-acknowledged): handed out, never completed; one that
    /// cannot be read is dropped and counted.
    pub(crate) fn on_listened(&mut self, delivery: amqp::Delivery, cx: &mut Cx<'_>) {
        let correlation_id = || {
            delivery
                .properties
                .correlation_id
                .as_ref()
                .map(|c| c.as_str().to_owned())
        };
        let message = match Envelope::from_properties(&delivery.properties) {
            Ok(envelope) if envelope.kind != MessageType::Event => return,
            Ok(envelope) => envelope.open(&delivery.body),
            Err(e) => Err(e),
        };
        let message = match message {
            Ok(message) => message,
            Err(e) => {
                return cx.out.unreadable(
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
            cx.out.push(Output::Incoming(IncomingEvent::new(
                delivery,
                event,
                message.trace_id,
                message.correlation_id,
            )));
        }
    }

    /// Remembers a delivery until it is completed.
    fn hand_out(&mut self, tag: u64, in_flight: InFlight) -> DeliveryId {
        self.in_flight.insert(tag, in_flight);
        DeliveryId {
            epoch: self.epoch,
            tag,
        }
    }

    /// Checks a call against the declared methods and hands it to a handler.
    fn dispatch(&mut self, tag: u64, mut in_flight: InFlight, call: CallPayload, cx: &mut Cx<'_>) {
        in_flight.context = call.context.clone();
        let describe = call.method == DESCRIBE_METHOD;
        let spec = self
            .spec
            .as_ref()
            .and_then(|s| s.find(&call.method))
            .filter(|m| !m.hidden);
        if describe {
            let result = match &self.spec {
                Some(s) => serde_json::to_value(s.describe(self.public_key_pem.as_deref()))
                    .unwrap_or(Value::Null),
                None => Value::Null,
            };
            return self.finish(tag, in_flight, Outcome::Ok(result), Vec::new(), cx);
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
            return self.finish(tag, in_flight, Outcome::Err(error), Vec::new(), cx);
        }
        let token = match spec {
            Some(method) if method.authorize => match call.context.get(&method.context_token_key) {
                Some(Value::String(token)) => Some(token.clone()),
                _ => {
                    let error = NuropbError::new(
                        ErrorKind::Authentication,
                        format!("the context has no '{}' token", method.context_token_key),
                    );
                    return self.finish(tag, in_flight, Outcome::Err(error), Vec::new(), cx);
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
        cx.out.push(Output::Call(Call {
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

    /// Finishes a delivery handed out: see [`Endpoint::complete`](crate::mesh::Endpoint::complete).
    pub(crate) fn complete(
        &mut self,
        delivery: DeliveryId,
        outcome: Outcome,
        events: Vec<EventSpec>,
        cx: &mut Cx<'_>,
    ) -> Result<(), CompleteError> {
        if delivery.epoch != self.epoch {
            return Err(CompleteError::Stale);
        }
        let Some(in_flight) = self.in_flight.remove(&delivery.tag) else {
            return Err(CompleteError::Unknown);
        };
        self.finish(delivery.tag, in_flight, outcome, events, cx);
        Ok(())
    }

    /// Applies the ack table to a delivery that is no longer in flight.
    fn finish(
        &mut self,
        tag: u64,
        in_flight: InFlight,
        outcome: Outcome,
        mut events: Vec<EventSpec>,
        cx: &mut Cx<'_>,
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
        self.settle(tag, settle, cx);
        match (answer, is_request) {
            (Some((result, layout)), true) => self.answer(&in_flight, result, layout, cx),
            _ => {
                if in_flight.encrypted {
                    cx.crypto.forget_received(&in_flight.correlation_id);
                }
            }
        }
        for event in events {
            self.emit(&in_flight, event, cx);
        }
    }

    fn settle(&mut self, tag: u64, settle: Settle, cx: &mut Cx<'_>) {
        let Some(session) = cx.session.as_deref_mut() else {
            return;
        };
        let Some(ch) = session.channel else { return };
        match settle {
            Settle::Ack => self.settlements.ack(tag),
            Settle::Requeue => {
                self.settlements.forget(tag);
                let _ = session.conn.basic_nack(ch, tag, false, true);
            }
            Settle::Reject => {
                self.settlements.forget(tag);
                let _ = session.conn.basic_reject(ch, tag, false);
            }
        }
    }

    /// Sends the one response to a request, encrypted when the request was.
    fn answer(
        &mut self,
        in_flight: &InFlight,
        result: Result<Value, NuropbError>,
        layout: ResponseLayout,
        cx: &mut Cx<'_>,
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
            match cx
                .crypto
                .encrypt_response(&in_flight.correlation_id, &json, cx.unix, cx.now)
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
        self.publish_now(&message, body, cx);
    }

    /// Publishes an event a handler asked for, under the delivery's correlation id, trace id and
    /// context; never flagged encrypted.
    fn emit(&mut self, in_flight: &InFlight, spec: EventSpec, cx: &mut Cx<'_>) {
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
        self.publish_now(&message, body, cx);
    }

    /// Publishes a response or event on the current channel (they answer deliveries of this
    /// channel, so they never wait in the outbox).
    fn publish_now(&mut self, message: &TransportMessage, body: Vec<u8>, cx: &mut Cx<'_>) {
        let Ok(publication) = Publication::new(message, &self.exchanges, "", body) else {
            return; // a reply-to or topic longer than AMQP allows cannot be routed
        };
        if let Some(session) = cx.session.as_deref_mut() {
            session.publish(&publication);
        }
    }

    /// Rejects a message that cannot be read, once, and answers it when it has a reply-to and
    /// a correlation id; [`Output::Unreadable`] tells the driver.
    fn refuse(
        &mut self,
        tag: u64,
        properties: &amqp::Properties,
        kind: Option<MessageType>,
        error: DecodeError,
        cx: &mut Cx<'_>,
    ) {
        self.settle(tag, Settle::Reject, cx);
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
                    cx,
                );
                true
            }
            _ => false,
        };
        cx.out.unreadable(
            Arrival::ServiceQueue,
            correlation_id,
            error.to_string(),
            answered,
        );
    }
}
