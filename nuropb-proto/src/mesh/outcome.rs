//! What a handler hands back: the outcome of a call or an event.

use crate::error::NuropbError;
use serde_json::Value;

/// An event to publish once a delivery has been handled successfully.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSpec {
    /// The topic.
    pub topic: String,
    /// The event.
    pub event: Value,
    /// Its audience (`null` for everyone).
    pub target: Value,
}

impl EventSpec {
    /// An event for everyone on `topic`.
    pub fn new(topic: impl Into<String>, event: Value) -> Self {
        EventSpec {
            topic: topic.into(),
            event,
            target: Value::Null,
        }
    }
}

/// How handling a delivery ended.
///
/// | outcome | request | command, event |
/// |---|---|---|
/// | `Ok` | ack, result answered | ack |
/// | `Err` | reject, error answered | reject |
/// | `CallAgain`, first delivery | nack and requeue, no answer | same |
/// | `CallAgain`, redelivered | reject, `NuropbCallAgainReject` answered | reject |
/// | `Success` | ack, result answered, events published | ack, events published |
///
/// Events given to [`crate::mesh::Endpoint::complete`] are published after `Ok` and `Success`,
/// and dropped otherwise.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The handler returned a result.
    Ok(Value),
    /// The handler failed.
    Err(NuropbError),
    /// The handler asks for the delivery once more (Python's `NuropbCallAgain`): allowed once.
    CallAgain(String),
    /// The handler succeeded early, with events (Python's `NuropbSuccess`).
    Success {
        /// The result.
        result: Value,
        /// Events to publish.
        events: Vec<EventSpec>,
    },
}
