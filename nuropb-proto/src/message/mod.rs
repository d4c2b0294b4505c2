//! NuroPb messages: payloads, their JSON, and their AMQP form.
//!
//! A [`TransportMessage`] is a [`Payload`] plus what travels beside it (correlation id, trace id,
//! ttl, encrypted flag). Going out, [`Publication::new`] maps it to exchange, routing key,
//! mandatory flag, properties and body. Coming in, [`Envelope::from_properties`] validates the
//! properties and [`Envelope::open`] reads the (decrypted) body. [`json`] writes bodies byte for byte
//! as Python NuroPb does.
//!
//! ```
//! use nuropb_proto::message::{CallPayload, Envelope, Exchanges, Payload, Publication, TransportMessage};
//!
//! let call = CallPayload { service: "svc".into(), method: "hello".into(), correlation_id: "c1".into(), ..Default::default() };
//! let message = TransportMessage::new(Payload::Request(call));
//! let publication = Publication::plaintext(&message, &Exchanges::default(), "my-response-queue").unwrap();
//!
//! // … on the other side, the delivery's properties and body:
//! let envelope = Envelope::from_properties(&publication.decoded_properties()).unwrap();
//! assert_eq!(envelope.reply_to.as_deref(), Some("my-response-queue"));
//! let received = envelope.open(&publication.body).unwrap();
//! assert_eq!(received, message);
//! ```

pub mod amqp;
pub mod decode;
pub mod json;
pub mod kind;
pub mod payload;
pub mod transport;

pub use amqp::{CONTENT_TYPE, EncodeError, Envelope, Exchanges, Publication};
pub use decode::{DecodeError, decode_payload};
pub use kind::MessageType;
pub use payload::{
    CallPayload, EventLayout, EventPayload, Object, Payload, ResponseLayout, ResponsePayload,
};
pub use transport::{NUROPB_PROTOCOL, NUROPB_VERSION, TransportMessage};
