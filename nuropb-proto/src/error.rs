//! The NuroPb error: a kind named after the Python exception class, and a description.
//!
//! On the wire an error travels in a response as `{"error": "<class name>", "description": "<text>"}`.
//! [`NuropbError`] converts to and from that dict. Kinds that Python NuroPb defines are
//! [`ErrorKind`] variants; any other class name a remote peer sends (`ValueError`, `KeyError`,
//! `RuntimeError` …) is kept as [`ErrorKind::Other`], never flattened into a generic kind.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The kind of a NuroPb error, one per Python exception class.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `NuropbException`: the base class, used for runtime errors in handlers.
    Exception,
    /// `NuropbTimeoutError`: a deadline passed before the outcome arrived.
    Timeout,
    /// `NuropbTransportError`: the plumbing failed (connection or channel lost, broker refused).
    Transport,
    /// `NuropbMessageError`: a message could not be encoded or decoded.
    Message,
    /// `NuropbHandlingError`: the request could not be handled, e.g. an unknown method.
    Handling,
    /// `NuropbDeprecatedError`: the method or topic is deprecated.
    Deprecated,
    /// `NuropbValidationError`: the parameters failed validation.
    Validation,
    /// `NuropbAuthenticationError`: the caller's identity could not be established.
    Authentication,
    /// `NuropbAuthorizationError`: the caller may not do this.
    Authorization,
    /// `NuropbNotDeliveredError`: no service is bound to receive the message.
    NotDelivered,
    /// `NuropbCallAgainReject`: a second call-again for the same delivery was refused.
    CallAgainReject,
    /// `NuropbCallAgain`: a control outcome — handle this delivery once more.
    CallAgain,
    /// `NuropbSuccess`: a control outcome — succeed now with a result (and events).
    Success,
    /// Any other class name, as the remote peer sent it.
    Other(String),
}

impl ErrorKind {
    /// Every kind NuroPb defines, in the order of Python's `interface.py`.
    pub const DEFINED: [ErrorKind; 13] = [
        ErrorKind::Exception,
        ErrorKind::Timeout,
        ErrorKind::Transport,
        ErrorKind::Message,
        ErrorKind::Handling,
        ErrorKind::Deprecated,
        ErrorKind::Validation,
        ErrorKind::Authentication,
        ErrorKind::Authorization,
        ErrorKind::NotDelivered,
        ErrorKind::CallAgainReject,
        ErrorKind::CallAgain,
        ErrorKind::Success,
    ];

    /// The Python class name of this kind.
    ///
    /// ```
    /// use nuropb_proto::ErrorKind;
    /// assert_eq!(ErrorKind::Authorization.class_name(), "NuropbAuthorizationError");
    /// assert_eq!(ErrorKind::Other("KeyError".into()).class_name(), "KeyError");
    /// ```
    pub fn class_name(&self) -> &str {
        match self {
            ErrorKind::Exception => "NuropbException",
            ErrorKind::Timeout => "NuropbTimeoutError",
            ErrorKind::Transport => "NuropbTransportError",
            ErrorKind::Message => "NuropbMessageError",
            ErrorKind::Handling => "NuropbHandlingError",
            ErrorKind::Deprecated => "NuropbDeprecatedError",
            ErrorKind::Validation => "NuropbValidationError",
            ErrorKind::Authentication => "NuropbAuthenticationError",
            ErrorKind::Authorization => "NuropbAuthorizationError",
            ErrorKind::NotDelivered => "NuropbNotDeliveredError",
            ErrorKind::CallAgainReject => "NuropbCallAgainReject",
            ErrorKind::CallAgain => "NuropbCallAgain",
            ErrorKind::Success => "NuropbSuccess",
            ErrorKind::Other(name) => name,
        }
    }

    /// The kind for a class name; names NuroPb does not define become [`ErrorKind::Other`].
    ///
    /// ```
    /// use nuropb_proto::ErrorKind;
    /// assert_eq!(ErrorKind::from_class_name("NuropbTimeoutError"), ErrorKind::Timeout);
    /// assert_eq!(ErrorKind::from_class_name("ValueError"), ErrorKind::Other("ValueError".into()));
    /// ```
    pub fn from_class_name(name: &str) -> ErrorKind {
        ErrorKind::DEFINED
            .iter()
            .find(|kind| kind.class_name() == name)
            .cloned()
            .unwrap_or_else(|| ErrorKind::Other(name.to_owned()))
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.class_name())
    }
}

/// An error as NuroPb peers exchange it: a kind and a description.
///
/// ```
/// use nuropb_proto::{ErrorKind, NuropbError};
///
/// let err = NuropbError::new(ErrorKind::Handling, "Unknown method nope");
/// let dict = err.to_dict();
/// assert_eq!(dict.to_string(), r#"{"error":"NuropbHandlingError","description":"Unknown method nope"}"#);
/// assert_eq!(NuropbError::from_dict(&dict).unwrap(), err);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NuropbError {
    /// The Python class name, as a kind.
    pub kind: ErrorKind,
    /// What went wrong, for people.
    pub description: String,
}

impl NuropbError {
    /// An error of `kind` described by `description`.
    pub fn new(kind: ErrorKind, description: impl Into<String>) -> Self {
        NuropbError {
            kind,
            description: description.into(),
        }
    }

    /// An error of `kind` whose description is the class name, as Python's default.
    pub fn bare(kind: ErrorKind) -> Self {
        let description = kind.class_name().to_owned();
        NuropbError { kind, description }
    }

    /// The `{"error": …, "description": …}` dict.
    pub fn to_dict(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Reads an error dict; `None` unless `value` is an object with a string `error`.
    ///
    /// A missing or null `description` reads as the class name, as Python fills it in.
    pub fn from_dict(value: &Value) -> Option<NuropbError> {
        let object = value.as_object()?;
        let kind = ErrorKind::from_class_name(object.get("error")?.as_str()?);
        let description = match object.get("description") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => kind.class_name().to_owned(),
            Some(other) => other.to_string(),
        };
        Some(NuropbError { kind, description })
    }
}

impl fmt::Display for NuropbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.description)
    }
}

impl std::error::Error for NuropbError {}

impl Serialize for NuropbError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("error", self.kind.class_name())?;
        map.serialize_entry("description", &self.description)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for NuropbError {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DictVisitor;
        impl<'de> Visitor<'de> for DictVisitor {
            type Value = NuropbError;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"an error dict {"error": …, "description": …}"#)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NuropbError, A::Error> {
                let mut object = serde_json::Map::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    object.insert(key, value);
                }
                NuropbError::from_dict(&Value::Object(object))
                    .ok_or_else(|| de::Error::missing_field("error"))
            }
        }
        deserializer.deserialize_map(DictVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_defined_kind_round_trips_through_its_class_name() {
        for kind in ErrorKind::DEFINED {
            assert_eq!(ErrorKind::from_class_name(kind.class_name()), kind);
            assert!(kind.class_name().starts_with("Nuropb"));
        }
    }

    #[test]
    fn an_unknown_remote_class_is_preserved() {
        let dict = json!({"error": "JSONDecodeError", "description": "Expecting value"});
        let err = NuropbError::from_dict(&dict).unwrap();
        assert_eq!(err.kind, ErrorKind::Other("JSONDecodeError".into()));
        assert_eq!(err.to_dict(), dict);
    }

    #[test]
    fn a_null_description_reads_as_the_class_name() {
        let err =
            NuropbError::from_dict(&json!({"error": "NuropbTimeoutError", "description": null}));
        assert_eq!(err, Some(NuropbError::bare(ErrorKind::Timeout)));
        assert_eq!(NuropbError::from_dict(&json!({"description": "x"})), None);
        assert_eq!(NuropbError::from_dict(&json!("NuropbException")), None);
    }
}
