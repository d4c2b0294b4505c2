//! The AMQP mapping of NuroPb messages, both ways, as pure functions.
//!
//! Outgoing ([`Publication::new`]), per NUROPB-WIRE.md §2.3–2.4:
//!
//! | type | exchange | routing key | mandatory | reply_to | expiration |
//! |---|---|---|---|---|---|
//! | request, command | rpc exchange | `service` | yes | the sender's response queue | ttl, when set and non-zero |
//! | event | events exchange | `topic` | no | `""` | — |
//! | response | `""` | the request's `reply_to` | no | `""` | — |
//!
//! Properties are always `content_type: application/json`, the headers `nuropb_protocol`,
//! `nuropb_version`, `nuropb_type`, `trace_id` (void when absent) and `encrypted` (`"yes"` or `""`),
//! in that order, all long strings, and `correlation_id`.
//!
//! Incoming ([`Envelope::from_properties`] then [`Envelope::open`]): the headers are validated
//! before the body is looked at, so a caller can decrypt in between.

use crate::amqp::{AMQPValue, Headers, HeadersRef, Properties, PropertiesRef, ShortString};
use crate::message::decode::{DecodeError, decode_payload};
use crate::message::kind::MessageType;
use crate::message::payload::Payload;
use crate::message::transport::{NUROPB_PROTOCOL, NUROPB_VERSION, TransportMessage};

/// The content type of every NuroPb message, encrypted or not.
pub const CONTENT_TYPE: &str = "application/json";

/// The names of the mesh's two publishing exchanges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchanges {
    /// The direct exchange requests and commands go to: `nuropb-rpc-exchange`.
    pub rpc: String,
    /// The topic exchange events go to: `nuropb-events-exchange`.
    pub events: String,
}

impl Default for Exchanges {
    fn default() -> Self {
        Exchanges {
            rpc: "nuropb-rpc-exchange".to_owned(),
            events: "nuropb-events-exchange".to_owned(),
        }
    }
}

/// Why a message cannot be put on the wire.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A value that AMQP carries as a short string is longer than 255 bytes.
    #[error("{field} is {len} bytes long; AMQP allows at most 255")]
    TooLong {
        /// Which value.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
}

fn short(field: &'static str, value: &str) -> Result<ShortString, EncodeError> {
    ShortString::try_new(value).map_err(|_| EncodeError::TooLong {
        field,
        len: value.len(),
    })
}

/// A message ready for `basic.publish`, its content properties already encoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Publication {
    /// The exchange to publish to.
    pub exchange: ShortString,
    /// The routing key.
    pub routing_key: ShortString,
    /// Whether an unroutable message comes back (`basic.return`).
    pub mandatory: bool,
    /// The content properties, encoded (flag word and property list), for
    /// [`Connection::basic_publish_raw`](crate::amqp::Connection::basic_publish_raw).
    pub properties: Vec<u8>,
    /// The body: JSON, or the encrypted form of it.
    pub body: Vec<u8>,
}

impl Publication {
    /// Maps `message` with `body` (its payload's JSON, or that encrypted) to a publication.
    /// `reply_to` is the sender's response queue, used by requests and commands.
    ///
    /// ```
    /// use nuropb_proto::message::{CallPayload, Exchanges, Payload, Publication, TransportMessage};
    ///
    /// let call = CallPayload { service: "svc".into(), method: "m".into(), correlation_id: "c".into(), ..Default::default() };
    /// let mut message = TransportMessage::new(Payload::Request(call));
    /// message.ttl = Some(60_000);
    /// let body = message.payload.to_json();
    /// let publication = Publication::new(&message, &Exchanges::default(), "my-rq", body).unwrap();
    /// assert_eq!(publication.exchange.as_str(), "nuropb-rpc-exchange");
    /// assert_eq!(publication.routing_key.as_str(), "svc");
    /// assert!(publication.mandatory);
    /// let properties = publication.decoded_properties();
    /// assert_eq!(properties.expiration.as_ref().unwrap().as_str(), "60000");
    /// assert_eq!(properties.flags(), 0xa700);
    /// ```
    pub fn new(
        message: &TransportMessage,
        exchanges: &Exchanges,
        reply_to: &str,
        body: Vec<u8>,
    ) -> Result<Publication, EncodeError> {
        let (exchange, routing_key, mandatory, reply_to) = match &message.payload {
            Payload::Request(call) | Payload::Command(call) => (
                exchanges.rpc.as_str(),
                call.service.as_str(),
                true,
                reply_to,
            ),
            Payload::Event(event) => (exchanges.events.as_str(), event.topic.as_str(), false, ""),
            Payload::Response(response) => ("", response.reply_to.as_str(), false, ""),
        };
        let expiration = match (message.kind(), message.ttl) {
            (MessageType::Request | MessageType::Command, Some(ttl)) if ttl > 0 => {
                Some(ttl.to_string())
            }
            _ => None,
        };
        let headers = [
            ("nuropb_protocol", Some(message.protocol.as_bytes())),
            ("nuropb_version", Some(NUROPB_VERSION.as_bytes())),
            ("nuropb_type", Some(message.kind().as_str().as_bytes())),
            ("trace_id", message.trace_id.as_deref().map(str::as_bytes)),
            (
                "encrypted",
                Some(if message.encrypted {
                    &b"yes"[..]
                } else {
                    &b""[..]
                }),
            ),
        ];
        let too_long = |field: &'static str, value: &str| EncodeError::TooLong {
            field,
            len: value.len(),
        };
        for (field, value) in [
            ("correlation_id", message.correlation_id.as_str()),
            ("reply_to", reply_to),
        ] {
            if value.len() > 255 {
                return Err(too_long(field, value));
            }
        }
        let mut properties = Vec::with_capacity(256);
        PropertiesRef {
            content_type: Some(CONTENT_TYPE),
            headers: Some(HeadersRef::LongStrings(&headers)),
            correlation_id: Some(&message.correlation_id),
            reply_to: Some(reply_to),
            expiration: expiration.as_deref(),
            ..PropertiesRef::default()
        }
        .encode(&mut properties)
        .map_err(|_| too_long("expiration", expiration.as_deref().unwrap_or_default()))?;
        Ok(Publication {
            exchange: short("exchange", exchange)?,
            routing_key: short("routing key", routing_key)?,
            mandatory,
            properties,
            body,
        })
    }

    /// Maps a plaintext `message` to a publication, its body the payload's JSON.
    pub fn plaintext(
        message: &TransportMessage,
        exchanges: &Exchanges,
        reply_to: &str,
    ) -> Result<Publication, EncodeError> {
        Publication::new(message, exchanges, reply_to, message.payload.to_json())
    }

    /// The content properties, decoded: what a receiver gets.
    pub fn decoded_properties(&self) -> Properties {
        // Written by `new` from checked values, the bytes always decode.
        Properties::decode(&self.properties).unwrap_or_default()
    }
}

/// What an incoming message's properties say, validated: everything but the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The protocol version (always [`NUROPB_PROTOCOL`] once validated).
    pub protocol: &'static str,
    /// `nuropb_type`.
    pub kind: MessageType,
    /// The `correlation_id` property.
    pub correlation_id: String,
    /// The `trace_id` header.
    pub trace_id: Option<String>,
    /// The `expiration` property, in milliseconds.
    pub ttl: Option<u64>,
    /// Whether the body is encrypted.
    pub encrypted: bool,
    /// The `reply_to` property, `None` when absent or empty.
    pub reply_to: Option<String>,
}

/// A header's bytes, without copying: long or short string; `None` when absent or void.
fn bytes<'a>(headers: &'a Headers, name: &'static str) -> Result<Option<&'a [u8]>, DecodeError> {
    match headers.get(name) {
        None | Some(AMQPValue::Void) => Ok(None),
        Some(AMQPValue::LongString(s)) => Ok(Some(s.as_bytes())),
        Some(AMQPValue::ShortString(s)) => Ok(Some(s.as_str().as_bytes())),
        Some(_) => Err(DecodeError::BadHeader(name)),
    }
}

/// A header as text, copied.
fn text(headers: &Headers, name: &'static str) -> Result<Option<String>, DecodeError> {
    bytes(headers, name)?
        .map(|b| String::from_utf8(b.to_vec()).map_err(|_| DecodeError::BadHeader(name)))
        .transpose()
}

impl Envelope {
    /// Validates the properties of an incoming message, as Python's `decode_rmq_body` does, and
    /// more: headers present, `nuropb_protocol` supported, `nuropb_type` known, a correlation id.
    ///
    /// ```
    /// use nuropb_proto::amqp::Properties;
    /// use nuropb_proto::message::{DecodeError, Envelope};
    /// assert_eq!(Envelope::from_properties(&Properties::default()), Err(DecodeError::NoHeaders));
    /// ```
    pub fn from_properties(properties: &Properties) -> Result<Envelope, DecodeError> {
        let headers = properties.headers.as_ref().ok_or(DecodeError::NoHeaders)?;
        let protocol = bytes(headers, "nuropb_protocol")?;
        if protocol != Some(NUROPB_PROTOCOL.as_bytes()) {
            let shown = protocol.map(|p| String::from_utf8_lossy(p).into_owned());
            return Err(DecodeError::UnsupportedProtocol(shown));
        }
        let kind_name = bytes(headers, "nuropb_type")?;
        let kind = kind_name
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(MessageType::parse)
            .ok_or_else(|| {
                DecodeError::UnknownType(kind_name.map(|k| String::from_utf8_lossy(k).into_owned()))
            })?;
        let correlation_id = properties
            .correlation_id
            .as_ref()
            .ok_or(DecodeError::NoCorrelationId)?
            .as_str()
            .to_owned();
        let ttl = match &properties.expiration {
            None => None,
            Some(e) => Some(
                e.as_str()
                    .parse()
                    .map_err(|_| DecodeError::BadExpiration(e.as_str().to_owned()))?,
            ),
        };
        Ok(Envelope {
            protocol: NUROPB_PROTOCOL,
            kind,
            correlation_id,
            trace_id: text(headers, "trace_id")?,
            ttl,
            encrypted: bytes(headers, "encrypted")? == Some(b"yes".as_slice()),
            reply_to: properties
                .reply_to
                .as_ref()
                .map(|r| r.as_str().to_owned())
                .filter(|r| !r.is_empty()),
        })
    }

    /// Reads the plaintext `body` (decrypted first when [`Envelope::encrypted`]) into the message.
    pub fn open(self, body: &[u8]) -> Result<TransportMessage, DecodeError> {
        Ok(TransportMessage {
            payload: decode_payload(self.kind, body)?,
            protocol: self.protocol,
            correlation_id: self.correlation_id,
            trace_id: self.trace_id,
            ttl: self.ttl,
            encrypted: self.encrypted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long(value: &str) -> AMQPValue {
        AMQPValue::LongString(value.as_bytes().to_vec().into())
    }
    use crate::message::payload::{EventPayload, ResponsePayload};

    #[test]
    fn events_and_responses_have_an_empty_reply_to_and_no_expiration() {
        let event = TransportMessage {
            ttl: Some(5),
            ..TransportMessage::new(Payload::Event(EventPayload {
                topic: "a.b".into(),
                ..Default::default()
            }))
        };
        let p = Publication::plaintext(&event, &Exchanges::default(), "ignored").unwrap();
        assert_eq!(
            (p.exchange.as_str(), p.routing_key.as_str(), p.mandatory),
            ("nuropb-events-exchange", "a.b", false)
        );
        assert_eq!(
            p.decoded_properties()
                .reply_to
                .as_ref()
                .map(ShortString::as_str),
            Some("")
        );
        assert_eq!(p.decoded_properties().expiration, None);
        assert_eq!(p.decoded_properties().flags(), 0xa600);

        let response = TransportMessage::new(Payload::Response(ResponsePayload {
            reply_to: "their-rq".into(),
            ..Default::default()
        }));
        let p = Publication::plaintext(&response, &Exchanges::default(), "mine").unwrap();
        assert_eq!(
            (p.exchange.as_str(), p.routing_key.as_str()),
            ("", "their-rq")
        );
        assert_eq!(
            p.decoded_properties().headers.unwrap().get("trace_id"),
            Some(&AMQPValue::Void)
        );
    }

    #[test]
    fn a_zero_ttl_omits_expiration_and_long_names_are_refused() {
        let call = crate::message::CallPayload {
            service: "s".repeat(256),
            ..Default::default()
        };
        let mut message = TransportMessage::new(Payload::Command(call));
        let err = Publication::plaintext(&message, &Exchanges::default(), "rq").unwrap_err();
        assert_eq!(
            err,
            EncodeError::TooLong {
                field: "routing key",
                len: 256
            }
        );
        if let Payload::Command(call) = &mut message.payload {
            call.service = "svc".into();
        }
        message.ttl = Some(0);
        let p = Publication::plaintext(&message, &Exchanges::default(), "rq").unwrap();
        assert_eq!(p.decoded_properties().expiration, None);
    }

    #[test]
    fn envelope_errors_are_typed() {
        let publication = Publication::plaintext(
            &TransportMessage::new(Payload::Event(EventPayload::default())),
            &Exchanges::default(),
            "",
        )
        .unwrap();
        let mut props = publication.decoded_properties();
        assert!(Envelope::from_properties(&props).is_ok());
        props
            .headers
            .as_mut()
            .unwrap()
            .insert("nuropb_type", long("bogus"));
        assert_eq!(
            Envelope::from_properties(&props),
            Err(DecodeError::UnknownType(Some("bogus".into())))
        );
        props
            .headers
            .as_mut()
            .unwrap()
            .insert("nuropb_protocol", long("0.2.0"));
        let err = Envelope::from_properties(&props).unwrap_err();
        assert_eq!(err.to_string(), "nuropb_protocol '0.2.0' is not supported");
        props.headers.as_mut().unwrap().remove("nuropb_protocol");
        assert_eq!(
            Envelope::from_properties(&props),
            Err(DecodeError::UnsupportedProtocol(None))
        );
    }
}
