//! What a caller builds: a [`Request`] (also sent as a command) and an [`OutgoingEvent`].

use crate::message::Object;
use serde_json::Value;
use std::time::Duration;

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
