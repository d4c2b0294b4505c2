//! The transport-level message: a payload and what travels beside it in AMQP properties.

use crate::message::kind::MessageType;
use crate::message::payload::Payload;

/// The NuroPb protocol version this implementation speaks, sent in the `nuropb_protocol` header.
pub const NUROPB_PROTOCOL: &str = "0.1.1";
/// The NuroPb library version this implementation is compatible with, sent in `nuropb_version`.
pub const NUROPB_VERSION: &str = "0.1.8";

/// A NuroPb message as it travels: the payload and its transport attributes.
///
/// On the wire the attributes are AMQP properties and headers (see [`crate::message::amqp`]); the
/// payload is the JSON body, possibly encrypted.
#[derive(Clone, Debug, PartialEq)]
pub struct TransportMessage {
    /// The protocol version, `nuropb_protocol`: [`NUROPB_PROTOCOL`].
    pub protocol: &'static str,
    /// The AMQP `correlation_id` property: the key that pairs a response with its request.
    pub correlation_id: String,
    /// The `trace_id` header; void on the wire when absent.
    pub trace_id: Option<String>,
    /// Time to live in milliseconds, the AMQP `expiration` (requests and commands only).
    pub ttl: Option<u64>,
    /// Whether the body is encrypted (`encrypted: "yes"`).
    pub encrypted: bool,
    /// The payload.
    pub payload: Payload,
}

impl TransportMessage {
    /// A message carrying `payload`, in protocol [`NUROPB_PROTOCOL`], with the payload's own
    /// correlation and trace ids, no ttl, not encrypted.
    ///
    /// ```
    /// use nuropb_proto::message::{CallPayload, MessageType, Payload, TransportMessage};
    /// let call = CallPayload { service: "svc".into(), correlation_id: "c1".into(), ..Default::default() };
    /// let message = TransportMessage::new(Payload::Request(call));
    /// assert_eq!((message.kind(), message.correlation_id.as_str()), (MessageType::Request, "c1"));
    /// ```
    pub fn new(payload: Payload) -> Self {
        TransportMessage {
            protocol: NUROPB_PROTOCOL,
            correlation_id: payload.correlation_id().to_owned(),
            trace_id: payload.trace_id().map(str::to_owned),
            ttl: None,
            encrypted: false,
            payload,
        }
    }

    /// The message type, `nuropb_type`, which is the payload's.
    pub fn kind(&self) -> MessageType {
        self.payload.kind()
    }
}
