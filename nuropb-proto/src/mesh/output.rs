//! What an [`Endpoint`](crate::mesh::Endpoint) asks of its driver and tells it: [`Output`].

use crate::error::NuropbError;
use crate::mesh::call::{Call, IncomingEvent};
use crate::message::MessageType;
use serde_json::Value;
use std::time::Duration;

/// Identifies a request (or a describe) until its [`Output::Response`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The number behind the id.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Where an [`Output::Unreadable`] message arrived.
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

/// A message that could not be read ([`Output::Unreadable`]): where it came, what was wrong,
/// what was done.
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

/// What the endpoint asks of its driver, or tells it; fetch with
/// [`Endpoint::poll_output`](crate::mesh::Endpoint::poll_output).
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Open a socket to node `node` (an index into
    /// [`EndpointConfig::nodes`](crate::mesh::EndpointConfig::nodes)), then say how it went:
    /// [`Endpoint::connected`](crate::mesh::Endpoint::connected) or
    /// [`Endpoint::connect_failed`](crate::mesh::Endpoint::connect_failed). There is never more
    /// than one socket: before this, any earlier one was given up with [`Output::Disconnected`].
    Connect {
        /// Which node.
        node: usize,
    },
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
    /// or its deadline). For the driver to log and count; nothing to do.
    Unreadable(UnreadableMessage),
    /// The broker paused (`true`) or resumed (`false`) reading from this connection.
    Blocked(bool),
    /// The connection ended, or was refused, or could not be opened: flush
    /// [`Endpoint::poll_transmit`](crate::mesh::Endpoint::poll_transmit) once more and drop the
    /// socket. The endpoint reconnects by itself: an [`Output::Connect`] follows after
    /// `reconnect_in` (at once for the next node while starting; after the backoff once it has
    /// been ready). Requests in flight have had their responses (errors); requests made from now
    /// on wait for the connection, up to their deadline.
    ///
    /// Besides a lost connection: an exclusive queue or consumer refused soon after a lost
    /// connection, which the broker may still hold (see [`Output::Stopped`]); a declaration
    /// refused in a way an operator can put right (a queue declared otherwise, a limit of the
    /// virtual host).
    Disconnected {
        /// Why.
        error: NuropbError,
        /// When the next [`Output::Connect`] comes.
        reconnect_in: Duration,
    },
    /// The endpoint stopped for good: shut down, or refused in a way a reconnect will not change
    /// (bad credentials, unknown virtual host, a second instance of a single-instance
    /// participant, a mesh that is not configured), or no node answered its first start, or it
    /// gave up reconnecting after
    /// [`EndpointConfig::max_reconnects`](crate::mesh::EndpointConfig::max_reconnects). Always
    /// the last output; drop the socket.
    ///
    /// An exclusive queue or consumer refused within two heartbeat intervals and 30 s of losing
    /// a connection on which the endpoint was ready is not yet taken for a second instance: a
    /// connection that went silent is only let go when the broker's heartbeat timer gives up on
    /// it, so until then the endpoint reconnects with backoff ([`Output::Disconnected`]).
    Stopped {
        /// Why, unless it was [`Endpoint::shutdown`](crate::mesh::Endpoint::shutdown).
        error: Option<NuropbError>,
    },
}

/// The outputs waiting for the driver, and the count of unreadable messages among all so far.
#[derive(Debug, Default)]
pub(crate) struct Outputs {
    queue: std::collections::VecDeque<Output>,
    unreadable: u64,
}

impl Outputs {
    pub(crate) fn push(&mut self, output: Output) {
        self.queue.push_back(output);
    }

    pub(crate) fn pop(&mut self) -> Option<Output> {
        self.queue.pop_front()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// Counts an unreadable message and tells the driver ([`Output::Unreadable`]).
    pub(crate) fn unreadable(
        &mut self,
        arrival: Arrival,
        correlation_id: Option<String>,
        reason: String,
        answered: bool,
    ) {
        self.unreadable += 1;
        self.push(Output::Unreadable(UnreadableMessage {
            arrival,
            correlation_id,
            reason,
            answered,
        }));
    }

    /// Unreadable messages so far.
    pub(crate) fn unreadable_count(&self) -> u64 {
        self.unreadable
    }
}
