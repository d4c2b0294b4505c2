//! An in-memory socket between one client and the broker: two FIFO byte pipes with latency.

use crate::broker::ConnectionId;
use std::collections::VecDeque;
use std::time::Instant;

/// One direction of a link: chunks with their arrival times, in order.
#[derive(Debug, Default)]
pub(crate) struct Pipe {
    chunks: VecDeque<(Instant, Vec<u8>)>,
    /// The latest arrival time handed out: a stream never reorders.
    last: Option<Instant>,
}

impl Pipe {
    /// Sends `bytes` to arrive at `at`, or after what is already on its way.
    pub(crate) fn push(&mut self, at: Instant, bytes: Vec<u8>) {
        let at = self.last.map_or(at, |l| l.max(at));
        self.last = Some(at);
        self.chunks.push_back((at, bytes));
    }

    /// The arrival time of the next chunk.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        self.chunks.front().map(|(at, _)| *at)
    }

    /// The next chunk if it has arrived by `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_at()? <= now {
            self.chunks.pop_front().map(|(_, b)| b)
        } else {
            None
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// A client's socket to the broker.
#[derive(Debug)]
pub(crate) struct Link {
    /// The broker's id for the connection.
    pub(crate) conn: ConnectionId,
    /// The broker node it goes through.
    pub(crate) via: usize,
    /// Client to broker.
    pub(crate) up: Pipe,
    /// Broker to client.
    pub(crate) down: Pipe,
    /// The broker is done with the connection: once `down` is delivered the client reads end
    /// of file and the link goes.
    pub(crate) broker_done: bool,
    /// The client dropped its socket: once `up` is delivered the broker sees it go.
    pub(crate) client_done: bool,
}

impl Link {
    pub(crate) fn new(conn: ConnectionId, via: usize) -> Self {
        Link {
            conn,
            via,
            up: Pipe::default(),
            down: Pipe::default(),
            broker_done: false,
            client_done: false,
        }
    }

    /// The earliest arrival on either pipe.
    pub(crate) fn next_at(&self) -> Option<Instant> {
        match (self.up.next_at(), self.down.next_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
