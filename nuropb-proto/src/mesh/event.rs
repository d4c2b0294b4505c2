//! What an [`Endpoint`](crate::mesh::Endpoint) tells its driver.

use crate::error::NuropbError;
use crate::mesh::call::{Call, IncomingEvent};
use crate::message::MessageType;
use serde_json::Value;

/// Identifies a request (or a describe) until its [`Event::Response`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The number behind the id.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Where an [`Event::Unreadable`] message arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Arrival {
    /// On the service queue (a call, command or event for this service).
    ServiceQueue,
    /// On the response queue.
    ResponseQueue,
    /// On the listen queue of a listener.
    ListenQueue,
    /// Returned by the broker as unroutable.
    Returned,
}

/// A message that could not be read: where it came, what was wrong, what was done.
#[derive(Clone, Debug, PartialEq)]
pub struct UnreadableMessage {
    /// Where it arrived.
    pub arrival: Arrival,
    /// Its correlation id, when that much could be read.
    pub correlation_id: Option<String>,
    /// What was wrong with it: the publisher's bytes, never the broker's.
    pub reason: String,
    /// Whether its sender was answered with a `NuropbMessageError`.
    pub answered: bool,
}

/// What happened on the mesh.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The endpoint's queues are declared and its consumers run: it serves and receives
    /// responses. Comes again after every reconnect.
    Ready,
    /// [`Endpoint::configure_mesh`](crate::mesh::Endpoint::configure_mesh) finished.
    MeshConfigured,
    /// A method call to handle; finish it with
    /// [`Endpoint::complete`](crate::mesh::Endpoint::complete).
    Call(Call),
    /// An event to handle; finish it with [`Endpoint::complete`](crate::mesh::Endpoint::complete).
    Incoming(IncomingEvent),
    /// The outcome of a request: exactly one per [`RequestId`].
    Response {
        /// The request.
        request: RequestId,
        /// Its result, or the error the service answered or the endpoint found (timeout, not
        /// delivered, connection lost).
        result: Result<Value, NuropbError>,
    },
    /// A command or event was not delivered: unroutable, or expired while the endpoint was
    /// disconnected.
    NotDelivered {
        /// Its correlation id (as returned when it was sent).
        correlation_id: String,
        /// Command or event.
        kind: MessageType,
        /// Why.
        error: NuropbError,
    },
    /// A message arrived that could not be read, and was dealt with: on the service queue,
    /// rejected once without requeue (so it dead-letters) and answered with a
    /// `NuropbMessageError` when it had a reply-to and a correlation id; on the response and
    /// listen queues, dropped (a request it may have been meant for waits for its real answer
    /// or its deadline). For the adapter to log and count; nothing to do.
    Unreadable(UnreadableMessage),
    /// The broker paused (`true`) or resumed (`false`) reading from this connection.
    Blocked(bool),
    /// The connection ended — or the broker refused this endpoint's exclusive queue or consumer
    /// soon after a lost connection, which it may still hold (see [`Event::Stopped`]), or refused
    /// a declaration in a way an operator can put right (a queue declared otherwise, a limit of
    /// the virtual host); reconnect after
    /// [`Endpoint::reconnect_delay`](crate::mesh::Endpoint::reconnect_delay) with
    /// [`Endpoint::reconnect`](crate::mesh::Endpoint::reconnect). Requests in flight have had their
    /// responses (errors); requests made from now on wait for the connection, up to their deadline.
    Disconnected {
        /// Why.
        error: NuropbError,
    },
    /// The endpoint stopped for good: closed on request, or refused in a way a reconnect will not
    /// change (bad credentials, unknown virtual host, a second instance of a single-instance
    /// participant, a mesh that is not configured). Always the last event.
    ///
    /// An exclusive queue or consumer refused within two heartbeat intervals and 30 s of losing
    /// a connection on which the endpoint was ready is not yet taken for a second instance: a
    /// connection that went silent is only let go when the broker's heartbeat timer gives up on
    /// it, so until then the endpoint reconnects with backoff ([`Event::Disconnected`]).
    Stopped {
        /// Why, unless it was [`Endpoint::close`](crate::mesh::Endpoint::close).
        error: Option<NuropbError>,
    },
}
