//! The JSON payloads of the four message types, serialized in Python NuroPb's key order.
//!
//! Python builds its payloads as dicts, and dicts keep insertion order, so the same type comes in
//! two key orders depending on the code path that built it (NUROPB-WIRE.md §3.2). A payload
//! remembers its layout, so that a decoded body re-encodes to the same bytes; new payloads take
//! the layout Python uses for the same situation.

use crate::error::NuropbError;
use crate::message::kind::MessageType;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

/// A JSON object: the type of `params` and `context`.
pub type Object = Map<String, Value>;

/// The payload of a request or a command: which method of which service, with what.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallPayload {
    /// The service name, which is also the routing key on the rpc exchange.
    pub service: String,
    /// The method to call.
    pub method: String,
    /// Keyword arguments of the method.
    pub params: Object,
    /// The sender's correlation id (informational: receivers use the AMQP property).
    pub correlation_id: String,
    /// Caller context, echoed in the response (and where an authorization token travels).
    pub context: Object,
    /// The trace id (informational: receivers use the `trace_id` header).
    pub trace_id: Option<String>,
}

/// The key order of an event payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EventLayout {
    /// As `publish_event` writes it: tag, topic, event, context, trace_id, correlation_id, target.
    #[default]
    Published,
    /// As a service writes events emitted while handling a request: tag, correlation_id, context,
    /// trace_id, topic, event, target.
    Emitted,
}

/// The payload of an event published on a topic.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventPayload {
    /// The topic, which is also the routing key on the events exchange.
    pub topic: String,
    /// The event itself: any JSON value.
    pub event: Value,
    /// Publisher context.
    pub context: Object,
    /// The trace id (informational: receivers use the `trace_id` header).
    pub trace_id: Option<String>,
    /// The correlation id (informational: receivers use the AMQP property).
    pub correlation_id: String,
    /// An optional audience: `null` from `publish_event`, a list from handlers.
    pub target: Value,
    /// The key order.
    pub layout: EventLayout,
}

/// The key order of a response payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResponseLayout {
    /// As a method's return value is answered: tag, result, error, correlation_id, trace_id,
    /// context, warning, reply_to.
    #[default]
    Returned,
    /// As an error, a `NuropbSuccess` or a decode failure is answered: tag, correlation_id,
    /// context, trace_id, result, error, warning, reply_to.
    Raised,
}

/// The payload of a response to a request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResponsePayload {
    /// The result, `null` on error.
    pub result: Value,
    /// The error, if the request failed.
    pub error: Option<NuropbError>,
    /// The request's correlation id.
    pub correlation_id: String,
    /// The request's trace id.
    pub trace_id: Option<String>,
    /// The request's context, echoed.
    pub context: Object,
    /// A warning; always `null` from Python NuroPb 0.1.8.
    pub warning: Option<String>,
    /// The response queue the request named.
    pub reply_to: String,
    /// The key order.
    pub layout: ResponseLayout,
}

/// A payload of any of the four types.
#[derive(Clone, Debug, PartialEq)]
pub enum Payload {
    /// A request: expects a response.
    Request(CallPayload),
    /// A command: fire and forget.
    Command(CallPayload),
    /// An event on a topic.
    Event(EventPayload),
    /// The response to a request.
    Response(ResponsePayload),
}

impl Payload {
    /// Which of the four this is.
    pub fn kind(&self) -> MessageType {
        match self {
            Payload::Request(_) => MessageType::Request,
            Payload::Command(_) => MessageType::Command,
            Payload::Event(_) => MessageType::Event,
            Payload::Response(_) => MessageType::Response,
        }
    }

    /// The correlation id the body carries.
    pub fn correlation_id(&self) -> &str {
        match self {
            Payload::Request(p) | Payload::Command(p) => &p.correlation_id,
            Payload::Event(p) => &p.correlation_id,
            Payload::Response(p) => &p.correlation_id,
        }
    }

    /// The trace id the body carries.
    pub fn trace_id(&self) -> Option<&str> {
        match self {
            Payload::Request(p) | Payload::Command(p) => p.trace_id.as_deref(),
            Payload::Event(p) => p.trace_id.as_deref(),
            Payload::Response(p) => p.trace_id.as_deref(),
        }
    }

    /// The body: this payload as Python NuroPb's `json.dumps` writes it.
    ///
    /// ```
    /// use nuropb_proto::message::{CallPayload, Payload};
    /// let call = CallPayload { service: "svc".into(), method: "m".into(), ..Default::default() };
    /// assert_eq!(
    ///     Payload::Command(call).to_json(),
    ///     br#"{"tag": "command", "service": "svc", "method": "m", "params": {}, "correlation_id": "", "context": {}, "trace_id": null}"#
    /// );
    /// ```
    pub fn to_json(&self) -> Vec<u8> {
        crate::message::json::to_vec(self)
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let tag = self.kind().as_str();
        match self {
            Payload::Request(p) | Payload::Command(p) => {
                let mut map = serializer.serialize_map(Some(7))?;
                map.serialize_entry("tag", tag)?;
                map.serialize_entry("service", &p.service)?;
                map.serialize_entry("method", &p.method)?;
                map.serialize_entry("params", &p.params)?;
                map.serialize_entry("correlation_id", &p.correlation_id)?;
                map.serialize_entry("context", &p.context)?;
                map.serialize_entry("trace_id", &p.trace_id)?;
                map.end()
            }
            Payload::Event(p) => {
                let mut map = serializer.serialize_map(Some(7))?;
                map.serialize_entry("tag", tag)?;
                match p.layout {
                    EventLayout::Published => {
                        map.serialize_entry("topic", &p.topic)?;
                        map.serialize_entry("event", &p.event)?;
                        map.serialize_entry("context", &p.context)?;
                        map.serialize_entry("trace_id", &p.trace_id)?;
                        map.serialize_entry("correlation_id", &p.correlation_id)?;
                    }
                    EventLayout::Emitted => {
                        map.serialize_entry("correlation_id", &p.correlation_id)?;
                        map.serialize_entry("context", &p.context)?;
                        map.serialize_entry("trace_id", &p.trace_id)?;
                        map.serialize_entry("topic", &p.topic)?;
                        map.serialize_entry("event", &p.event)?;
                    }
                }
                map.serialize_entry("target", &p.target)?;
                map.end()
            }
            Payload::Response(p) => {
                let mut map = serializer.serialize_map(Some(8))?;
                map.serialize_entry("tag", tag)?;
                match p.layout {
                    ResponseLayout::Returned => {
                        map.serialize_entry("result", &p.result)?;
                        map.serialize_entry("error", &p.error)?;
                        map.serialize_entry("correlation_id", &p.correlation_id)?;
                        map.serialize_entry("trace_id", &p.trace_id)?;
                        map.serialize_entry("context", &p.context)?;
                    }
                    ResponseLayout::Raised => {
                        map.serialize_entry("correlation_id", &p.correlation_id)?;
                        map.serialize_entry("context", &p.context)?;
                        map.serialize_entry("trace_id", &p.trace_id)?;
                        map.serialize_entry("result", &p.result)?;
                        map.serialize_entry("error", &p.error)?;
                    }
                }
                map.serialize_entry("warning", &p.warning)?;
                map.serialize_entry("reply_to", &p.reply_to)?;
                map.end()
            }
        }
    }
}
