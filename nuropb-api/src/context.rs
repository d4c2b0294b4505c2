//! What a handler knows about the call it handles, and the events it may add.

use nuropb_proto::mesh::EventSpec;
use nuropb_proto::message::Object;
use serde::Serialize;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// The context of one call or event: the caller's context, the claims the authorize hook found,
/// trace and correlation ids, and the events the handler adds — published once it succeeds,
/// dropped if it fails.
///
/// ```
/// use nuropb_api::CallContext;
/// let ctx = CallContext::detached("orders.place");
/// ctx.add_event("orders.placed", &serde_json::json!({"id": 7}));
/// assert_eq!(ctx.take_events().len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct CallContext {
    pub(crate) method: String,
    pub(crate) context: Object,
    pub(crate) claims: Option<Value>,
    pub(crate) trace_id: Option<String>,
    pub(crate) correlation_id: String,
    pub(crate) encrypted: bool,
    pub(crate) events: Arc<Mutex<Vec<EventSpec>>>,
}

impl CallContext {
    /// A context for `method` with nothing in it, e.g. to test a handler directly.
    pub fn detached(method: impl Into<String>) -> CallContext {
        CallContext {
            method: method.into(),
            context: Object::new(),
            claims: None,
            trace_id: None,
            correlation_id: String::new(),
            encrypted: false,
            events: Arc::default(),
        }
    }

    /// The method (or, for an event, the topic).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The caller's context.
    pub fn context(&self) -> &Object {
        &self.context
    }

    /// The claims the method's authorize hook returned.
    pub fn claims(&self) -> Option<&Value> {
        self.claims.as_ref()
    }

    /// The caller's trace id.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }

    /// The call's correlation id.
    pub fn correlation_id(&self) -> &str {
        &self.correlation_id
    }

    /// Whether the call came encrypted.
    pub fn encrypted(&self) -> bool {
        self.encrypted
    }

    /// Adds an event to publish on `topic` once the handler succeeds.
    pub fn add_event(&self, topic: impl Into<String>, event: &impl Serialize) {
        self.add_event_for(topic, event, Value::Null);
    }

    /// Adds an event for an audience (`target`).
    pub fn add_event_for(&self, topic: impl Into<String>, event: &impl Serialize, target: Value) {
        let event = serde_json::to_value(event).unwrap_or(Value::Null);
        if let Ok(mut events) = self.events.lock() {
            events.push(EventSpec {
                topic: topic.into(),
                event,
                target,
            });
        }
    }

    /// Takes the events added so far.
    pub fn take_events(&self) -> Vec<EventSpec> {
        take_events(&self.events)
    }
}

/// Takes the events in `events`, the list a context and its clones share.
pub(crate) fn take_events(events: &Mutex<Vec<EventSpec>>) -> Vec<EventSpec> {
    events
        .lock()
        .map(|mut events| std::mem::take(&mut *events))
        .unwrap_or_default()
}
