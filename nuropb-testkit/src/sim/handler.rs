//! What a simulated service does with a call or an event: a closure per endpoint, answering with
//! a [`Reply`] — an outcome now, an outcome after a simulated delay, or never.

use nuropb_proto::NuropbError;
use nuropb_proto::mesh::{Call, EventSpec, IncomingEvent, Outcome};
use serde_json::Value;
use std::time::Duration;

/// The work handed to a handler.
#[derive(Clone, Copy, Debug)]
pub enum Work<'a> {
    /// A method call (request or command).
    Call(&'a Call),
    /// An event on a subscribed topic.
    Event(&'a IncomingEvent),
}

/// A handler's answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// Complete the delivery with `outcome` (and the context `events`) after `after` of
    /// simulated time (zero: in the same step).
    Complete {
        /// The outcome given to [`Endpoint::complete`](nuropb_proto::mesh::Endpoint::complete).
        outcome: Outcome,
        /// Events the handler added to its call context.
        events: Vec<EventSpec>,
        /// How long the handler takes.
        after: Duration,
    },
    /// Never complete: the handler hangs.
    Hold,
}

impl Reply {
    /// Completes with `outcome` at once.
    pub fn outcome(outcome: Outcome) -> Self {
        Reply::Complete {
            outcome,
            events: Vec::new(),
            after: Duration::ZERO,
        }
    }

    /// Completes with a result at once.
    pub fn ok(result: Value) -> Self {
        Reply::outcome(Outcome::Ok(result))
    }

    /// Fails at once.
    pub fn err(error: NuropbError) -> Self {
        Reply::outcome(Outcome::Err(error))
    }

    /// Asks for the delivery once more.
    pub fn call_again() -> Self {
        Reply::outcome(Outcome::CallAgain("call again".to_owned()))
    }

    /// The same reply, `delay` later.
    pub fn after(self, delay: Duration) -> Self {
        match self {
            Reply::Complete {
                outcome, events, ..
            } => Reply::Complete {
                outcome,
                events,
                after: delay,
            },
            Reply::Hold => Reply::Hold,
        }
    }

    /// The same reply, with events added through the call context.
    pub fn with_events(self, added: Vec<EventSpec>) -> Self {
        match self {
            Reply::Complete {
                outcome,
                mut events,
                after,
            } => {
                events.extend(added);
                Reply::Complete {
                    outcome,
                    events,
                    after,
                }
            }
            Reply::Hold => Reply::Hold,
        }
    }
}

/// A service's behaviour: called once per call or event handed out.
pub type Handler = Box<dyn FnMut(&Work<'_>) -> Reply>;
