//! What the endpoint hands to handlers: calls of methods and incoming events.

use crate::message::{EventPayload, MessageType, Object};
use serde_json::Value;

/// Identifies a delivery being handled, until [`crate::mesh::Endpoint::complete`].
///
/// A delivery belongs to one channel of one connection; after a reconnect, the ids of the old
/// connection are stale and completing them does nothing (the broker has requeued them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryId {
    pub(crate) epoch: u64,
    pub(crate) tag: u64,
}

/// A call of one of the service's methods: run the handler, then complete the delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The delivery to complete with the handler's outcome.
    pub delivery: DeliveryId,
    /// A request (answered) or a command (not answered).
    pub kind: MessageType,
    /// The method.
    pub method: String,
    /// Its keyword parameters.
    pub params: Object,
    /// The caller's context.
    pub context: Object,
    /// For a method that requires authorization, the raw token from the context (e.g.
    /// `"Bearer …"`): pass it to the method's authorize hook, and its claims to the handler.
    pub token: Option<String>,
    /// The caller's trace id.
    pub trace_id: Option<String>,
    /// The call's correlation id.
    pub correlation_id: String,
    /// Whether the call came encrypted.
    pub encrypted: bool,
    /// Whether the broker delivered this message before (a call-again, or a crashed consumer).
    pub redelivered: bool,
}

/// An event on a topic this service subscribes to: run the event handler, then complete.
#[derive(Clone, Debug, PartialEq)]
pub struct IncomingEvent {
    /// The delivery to complete.
    pub delivery: DeliveryId,
    /// The topic it was published on.
    pub topic: String,
    /// The event.
    pub event: Value,
    /// Its audience, if the publisher named one.
    pub target: Value,
    /// The publisher's context.
    pub context: Object,
    /// The publisher's trace id.
    pub trace_id: Option<String>,
    /// The publisher's correlation id.
    pub correlation_id: String,
}

impl IncomingEvent {
    /// Event `payload`, delivered as `delivery` in a message with these ids.
    pub(crate) fn new(
        delivery: DeliveryId,
        payload: EventPayload,
        trace_id: Option<String>,
        correlation_id: String,
    ) -> IncomingEvent {
        IncomingEvent {
            delivery,
            topic: payload.topic,
            event: payload.event,
            target: payload.target,
            context: payload.context,
            trace_id,
            correlation_id,
        }
    }
}
