//! Messages waiting for the connection, bounded, each with its deadline.

use crate::message::{MessageType, Publication};
use std::collections::VecDeque;
use std::time::Instant;

/// A message waiting for the endpoint to be ready.
#[derive(Debug)]
pub(crate) struct Queued {
    pub(crate) correlation_id: String,
    pub(crate) kind: MessageType,
    pub(crate) publication: Publication,
    pub(crate) deadline: Instant,
}

/// The outbox: at most `max` messages.
#[derive(Debug)]
pub(crate) struct Outbox {
    queue: VecDeque<Queued>,
    max: usize,
}

impl Outbox {
    pub(crate) fn new(max: usize) -> Self {
        Outbox {
            queue: VecDeque::new(),
            max,
        }
    }

    /// Whether it holds as many messages as it may.
    pub(crate) fn is_full(&self) -> bool {
        self.queue.len() >= self.max
    }

    /// Keeps `queued` for later (see [`Outbox::is_full`]).
    pub(crate) fn push(&mut self, queued: Queued) {
        self.queue.push_back(queued);
    }

    /// Everything waiting, in order, leaving it empty.
    pub(crate) fn take(&mut self) -> VecDeque<Queued> {
        std::mem::take(&mut self.queue)
    }

    /// The messages whose deadline is `now` or earlier, taken out.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<Queued> {
        if !self.queue.iter().any(|q| q.deadline <= now) {
            return Vec::new();
        }
        let (expired, kept): (Vec<_>, Vec<_>) =
            self.take().into_iter().partition(|q| q.deadline <= now);
        let kept = VecDeque::from(kept);
        self.queue = kept;
        expired
    }

    /// The soonest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.queue.iter().map(|q| q.deadline).min()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}
