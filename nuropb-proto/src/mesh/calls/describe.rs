//! What the endpoint knows of other services — their descriptions, with their public keys — and
//! the encrypted requests waiting for a key.

use super::builders::Request;
use crate::describe::ServiceDescription;
use crate::mesh::output::RequestId;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

/// An encrypted request waiting for its service's public key.
#[derive(Debug)]
pub(crate) struct AwaitingKey {
    pub(crate) id: RequestId,
    pub(crate) request: Request,
    pub(crate) correlation_id: String,
    pub(crate) deadline: Instant,
}

/// The describe cache: one entry per service described; the waiting requests, per service.
#[derive(Debug, Default)]
pub(crate) struct Descriptions {
    pub(crate) by_service: HashMap<String, ServiceDescription>,
    pub(crate) awaiting_key: HashMap<String, Vec<AwaitingKey>>,
    /// Describes the endpoint made for itself (for a key): no output of theirs.
    pub(crate) internal: HashSet<RequestId>,
}

impl Descriptions {
    /// How many requests wait for a key.
    pub(crate) fn awaiting(&self) -> usize {
        self.awaiting_key.values().map(Vec::len).sum()
    }

    /// Whether a request waiting for a key has `correlation_id`.
    pub(crate) fn awaits(&self, correlation_id: &str) -> bool {
        self.awaiting_key
            .values()
            .flatten()
            .any(|waiting| waiting.correlation_id == correlation_id)
    }

    /// The soonest deadline of a request waiting for a key.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.awaiting_key
            .values()
            .flatten()
            .map(|a| a.deadline)
            .min()
    }

    /// The waiting requests whose deadline is `now` or earlier, taken out.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<AwaitingKey> {
        let mut expired = Vec::new();
        self.awaiting_key.retain(|_, waiting| {
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(waiting)
                .into_iter()
                .partition(|w| w.deadline <= now);
            expired.extend(gone);
            *waiting = kept;
            !waiting.is_empty()
        });
        expired
    }

    /// Every waiting request, taken out.
    pub(crate) fn take_all(&mut self) -> Vec<AwaitingKey> {
        std::mem::take(&mut self.awaiting_key)
            .into_values()
            .flatten()
            .collect()
    }
}
