//! Reading payload bodies, and the ways that can fail.
//!
//! A body is read in one pass into the known fields, remembering where the order-revealing keys
//! came, then checked field by field for the message type its `nuropb_type` header names. Like
//! Python NuroPb, the body's own `tag` is ignored; unlike it, a missing `context` reads as `{}`.

use crate::error::{ErrorKind, NuropbError};
use crate::message::json::{self, JsonError, python_type_name};
use crate::message::kind::MessageType;
use crate::message::payload::{
    CallPayload, EventLayout, EventPayload, Object, Payload, ResponseLayout, ResponsePayload,
};
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use std::fmt;

/// Why an incoming message could not be read. Every kind is answered (where the message has a
/// reply-to) with a `NuropbMessageError` whose description matches Python's wording, see
/// [`DecodeError::to_error`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The content header could not be read, or the body was over the size limit.
    #[error("{0}")]
    Content(#[from] crate::amqp::ContentError),
    /// The content header has no `headers` table at all.
    #[error("message has no headers")]
    NoHeaders,
    /// `nuropb_protocol` is missing or not `0.1.1`.
    #[error("nuropb_protocol '{}' is not supported", .0.as_deref().unwrap_or("None"))]
    UnsupportedProtocol(Option<String>),
    /// `nuropb_type` is missing or not one of the four types.
    #[error("message_type '{}' is not supported", .0.as_deref().unwrap_or("None"))]
    UnknownType(Option<String>),
    /// The message has no `correlation_id` property.
    #[error("message has no correlation_id")]
    NoCorrelationId,
    /// A NuroPb header has a value of the wrong AMQP type.
    #[error("header '{0}' is not a string")]
    BadHeader(&'static str),
    /// The `expiration` property is not a number of milliseconds.
    #[error("expiration '{0}' is not a number of milliseconds")]
    BadExpiration(String),
    /// The body is not UTF-8 JSON.
    #[error("{0}")]
    Json(JsonError),
    /// The body is JSON but not an object.
    #[error("Decoded payload is not a dictionary: {0}")]
    NotAnObject(&'static str),
    /// A field the message type needs is missing.
    #[error("{kind} payload has no '{field}'")]
    MissingField {
        /// The message type.
        kind: MessageType,
        /// The missing field.
        field: &'static str,
    },
    /// A field has the wrong JSON type.
    #[error("'{field}' is not {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it should be, e.g. `"a string"`.
        expected: &'static str,
    },
    /// The body could not be decrypted.
    #[error("{0}")]
    Decrypt(#[from] crate::crypto::CryptoError),
}

impl DecodeError {
    /// The error to answer the sender with.
    pub fn to_error(&self) -> NuropbError {
        NuropbError::new(ErrorKind::Message, self.to_string())
    }
}

/// Reads a plaintext body as the payload of a message of type `kind`.
///
/// ```
/// use nuropb_proto::message::{decode_payload, MessageType, Payload};
///
/// let body = br#"{"tag":"request","service":"svc","method":"m","params":{"a":1},"correlation_id":"c","context":{},"trace_id":null}"#;
/// let Ok(Payload::Request(call)) = decode_payload(MessageType::Request, body) else { panic!() };
/// assert_eq!((call.service.as_str(), call.method.as_str()), ("svc", "m"));
/// ```
pub fn decode_payload(kind: MessageType, body: &[u8]) -> Result<Payload, DecodeError> {
    let fields: Fields = match json::from_slice(body) {
        Ok(fields) => fields,
        Err(err) => {
            return Err(match json::from_slice::<Value>(body) {
                Ok(other) if !other.is_object() => {
                    DecodeError::NotAnObject(python_type_name(&other))
                }
                _ => DecodeError::Json(err),
            });
        }
    };
    fields.into_payload(kind)
}

/// The keys NuroPb payloads use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Service,
    Method,
    Params,
    CorrelationId,
    Context,
    TraceId,
    Topic,
    Event,
    Target,
    Result,
    Error,
    Warning,
    ReplyTo,
    Other,
}

const KEYS: usize = Key::Other as usize;

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a payload key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "service" => Key::Service,
                    "method" => Key::Method,
                    "params" => Key::Params,
                    "correlation_id" => Key::CorrelationId,
                    "context" => Key::Context,
                    "trace_id" => Key::TraceId,
                    "topic" => Key::Topic,
                    "event" => Key::Event,
                    "target" => Key::Target,
                    "result" => Key::Result,
                    "error" => Key::Error,
                    "warning" => Key::Warning,
                    "reply_to" => Key::ReplyTo,
                    _ => Key::Other,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// The known fields of a body, and the position each key came in.
#[derive(Default)]
struct Fields {
    values: [Option<Value>; KEYS],
    position: [usize; KEYS],
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a payload object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut fields = Fields::default();
                let mut at = 0;
                while let Some(key) = map.next_key::<Key>()? {
                    if key == Key::Other {
                        map.next_value::<IgnoredAny>()?;
                    } else {
                        // A repeated key keeps its last value, as Python's json.loads does.
                        fields.values[key as usize] = Some(map.next_value()?);
                        fields.position[key as usize] = at;
                    }
                    at += 1;
                }
                Ok(fields)
            }
        }
        deserializer.deserialize_map(FieldsVisitor)
    }
}

impl Fields {
    fn take(&mut self, key: Key) -> Option<Value> {
        self.values[key as usize].take()
    }

    fn came_before(&self, first: Key, second: Key) -> bool {
        self.position[first as usize] < self.position[second as usize]
    }

    fn required(
        &mut self,
        kind: MessageType,
        key: Key,
        name: &'static str,
    ) -> Result<Value, DecodeError> {
        self.take(key)
            .ok_or(DecodeError::MissingField { kind, field: name })
    }

    fn string(
        &mut self,
        kind: MessageType,
        key: Key,
        name: &'static str,
    ) -> Result<String, DecodeError> {
        match self.required(kind, key, name)? {
            Value::String(s) => Ok(s),
            _ => Err(DecodeError::WrongType {
                field: name,
                expected: "a string",
            }),
        }
    }

    fn optional_string(
        &mut self,
        key: Key,
        name: &'static str,
    ) -> Result<Option<String>, DecodeError> {
        match self.take(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(DecodeError::WrongType {
                field: name,
                expected: "a string or null",
            }),
        }
    }

    fn object(&mut self, key: Key, name: &'static str) -> Result<Option<Object>, DecodeError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(DecodeError::WrongType {
                field: name,
                expected: "an object",
            }),
        }
    }

    /// The body's correlation id; informational, so a missing one reads as empty.
    fn correlation_id(&mut self) -> Result<String, DecodeError> {
        Ok(self
            .optional_string(Key::CorrelationId, "correlation_id")?
            .unwrap_or_default())
    }

    fn into_payload(mut self, kind: MessageType) -> Result<Payload, DecodeError> {
        let context = self.object(Key::Context, "context")?.unwrap_or_default();
        let trace_id = self.optional_string(Key::TraceId, "trace_id")?;
        let correlation_id = self.correlation_id()?;
        Ok(match kind {
            MessageType::Request | MessageType::Command => {
                let call = CallPayload {
                    service: self.string(kind, Key::Service, "service")?,
                    method: self.string(kind, Key::Method, "method")?,
                    params: self.object(Key::Params, "params")?.ok_or(
                        DecodeError::MissingField {
                            kind,
                            field: "params",
                        },
                    )?,
                    correlation_id,
                    context,
                    trace_id,
                };
                if kind == MessageType::Request {
                    Payload::Request(call)
                } else {
                    Payload::Command(call)
                }
            }
            MessageType::Event => {
                let layout = if self.came_before(Key::CorrelationId, Key::Topic) {
                    EventLayout::Emitted
                } else {
                    EventLayout::Published
                };
                Payload::Event(EventPayload {
                    topic: self.string(kind, Key::Topic, "topic")?,
                    event: self.required(kind, Key::Event, "event")?,
                    context,
                    trace_id,
                    correlation_id,
                    target: self.take(Key::Target).unwrap_or(Value::Null),
                    layout,
                })
            }
            MessageType::Response => {
                let layout = if self.came_before(Key::CorrelationId, Key::Result) {
                    ResponseLayout::Raised
                } else {
                    ResponseLayout::Returned
                };
                let result = self.required(kind, Key::Result, "result")?;
                let error = match self.required(kind, Key::Error, "error")? {
                    Value::Null => None,
                    dict => Some(NuropbError::from_dict(&dict).ok_or(DecodeError::WrongType {
                        field: "error",
                        expected: "an error dict",
                    })?),
                };
                Payload::Response(ResponsePayload {
                    result,
                    error,
                    correlation_id,
                    trace_id,
                    context,
                    warning: self.optional_string(Key::Warning, "warning")?,
                    reply_to: self
                        .optional_string(Key::ReplyTo, "reply_to")?
                        .unwrap_or_default(),
                    layout,
                })
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_object_body_names_its_python_type() {
        for (body, name) in [
            ("[1]", "list"),
            ("\"x\"", "str"),
            ("3", "int"),
            ("null", "NoneType"),
        ] {
            let err = decode_payload(MessageType::Request, body.as_bytes()).unwrap_err();
            assert_eq!(err, DecodeError::NotAnObject(name));
        }
        assert_eq!(
            DecodeError::NotAnObject("list").to_error().description,
            "Decoded payload is not a dictionary: list"
        );
    }

    #[test]
    fn bad_json_is_a_json_error() {
        let err = decode_payload(MessageType::Request, b"{not json").unwrap_err();
        assert!(matches!(err, DecodeError::Json(_)), "{err:?}");
        let err = decode_payload(MessageType::Request, b"\xff\xfe").unwrap_err();
        assert!(matches!(err, DecodeError::Json(_)), "{err:?}");
    }

    #[test]
    fn required_fields_and_their_types_are_checked() {
        let err =
            decode_payload(MessageType::Request, br#"{"service":"s","params":{}}"#).unwrap_err();
        assert_eq!(
            err,
            DecodeError::MissingField {
                kind: MessageType::Request,
                field: "method"
            }
        );
        let err = decode_payload(
            MessageType::Command,
            br#"{"service":"s","method":1,"params":{}}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            DecodeError::WrongType {
                field: "method",
                expected: "a string"
            }
        );
        let err = decode_payload(
            MessageType::Request,
            br#"{"service":"s","method":"m","params":[]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err,
            DecodeError::WrongType {
                field: "params",
                expected: "an object"
            }
        );
        let err = decode_payload(MessageType::Event, br#"{"topic":"t"}"#).unwrap_err();
        assert_eq!(
            err,
            DecodeError::MissingField {
                kind: MessageType::Event,
                field: "event"
            }
        );
        let err = decode_payload(MessageType::Response, br#"{"result":1}"#).unwrap_err();
        assert_eq!(
            err,
            DecodeError::MissingField {
                kind: MessageType::Response,
                field: "error"
            }
        );
        let err =
            decode_payload(MessageType::Response, br#"{"result":1,"error":"boom"}"#).unwrap_err();
        assert_eq!(
            err,
            DecodeError::WrongType {
                field: "error",
                expected: "an error dict"
            }
        );
    }

    #[test]
    fn a_missing_context_reads_as_empty() {
        let Payload::Request(call) = decode_payload(
            MessageType::Request,
            br#"{"service":"s","method":"m","params":{}}"#,
        )
        .unwrap() else {
            panic!("not a request")
        };
        assert!(call.context.is_empty());
    }

    #[test]
    fn the_header_type_wins_over_the_body_tag() {
        let body = br#"{"tag":"request","topic":"t","event":1}"#;
        assert!(matches!(
            decode_payload(MessageType::Event, body),
            Ok(Payload::Event(_))
        ));
    }
}
