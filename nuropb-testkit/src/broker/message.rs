//! A published message, and its place in a queue.
//!
//! A [`Message`] is immutable once published and shared (`Arc`) by every queue it was routed to.
//! Its content properties are kept as the exact bytes the publisher sent, which deliveries carry
//! unchanged — as RabbitMQ forwards them; what the broker decides on (expiration, persistence) is
//! read from them once at publish, and the rest is decoded only when needed (dead-lettering,
//! headers exchanges, introspection).

use nuropb_proto::amqp::Properties;
use std::sync::Arc;
use std::time::Instant;

/// A message as published (or as re-published by dead-lettering).
#[derive(Debug)]
pub(crate) struct Message {
    /// The exchange it was published to.
    pub(crate) exchange: String,
    /// Its routing key.
    pub(crate) routing_key: String,
    /// The property flags and list exactly as they go on the wire (checked at publish).
    pub(crate) raw_properties: Vec<u8>,
    /// The body.
    pub(crate) body: Vec<u8>,
    /// The `expiration` property, parsed: milliseconds.
    pub(crate) ttl: Option<u64>,
    /// `delivery_mode` 2: the message survives a broker restart in a durable queue.
    pub(crate) persistent: bool,
}

impl Message {
    /// The content properties, as far as the client's decoder reads them (RabbitMQ forwards
    /// lists it cannot read; what the broker needs of them it reads from the bytes).
    pub(crate) fn properties(&self) -> Properties {
        Properties::salvage(&self.raw_properties).0
    }
}

/// A message in a queue, or delivered from one and not yet acknowledged.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The message.
    pub(crate) msg: Arc<Message>,
    /// Its position in the queue: requeued messages go back to where this says.
    pub(crate) seq: u64,
    /// Whether it has been delivered before.
    pub(crate) redelivered: bool,
    /// When it expires, from the queue's `x-message-ttl` and the message's `expiration`.
    pub(crate) expires_at: Option<Instant>,
}

/// Why a message left its queue for the dead-letter exchange (`x-death` `reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeathReason {
    /// `basic.reject` or `basic.nack` with `requeue=false`.
    Rejected,
    /// Its TTL ran out at the head of the queue.
    Expired,
    /// Dropped from the head of a full queue.
    Maxlen,
}

impl DeathReason {
    /// The reason as it appears in `x-death`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::Maxlen => "maxlen",
        }
    }
}
