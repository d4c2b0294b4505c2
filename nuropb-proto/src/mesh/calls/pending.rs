//! Requests waiting for their response, by correlation id, with their deadlines in order.

use crate::mesh::output::RequestId;
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// A request waiting for its response.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) id: RequestId,
    pub(crate) deadline: Instant,
    pub(crate) service: String,
    pub(crate) method: String,
    pub(crate) encrypted: bool,
    /// Published on the current connection (so lost with it), rather than waiting in the outbox.
    pub(crate) sent: bool,
    /// Why a response that came for it could not be read: said if the deadline passes.
    pub(crate) unreadable: Option<String>,
}

/// The pending requests; bounded by the caller ([`EndpointConfig::max_pending_requests`]).
///
/// [`EndpointConfig::max_pending_requests`]: crate::mesh::EndpointConfig::max_pending_requests
#[derive(Debug, Default)]
pub(crate) struct PendingTable {
    by_correlation: HashMap<String, Pending>,
    /// Deadlines, soonest first, with their correlation ids.
    deadlines: BTreeMap<(Instant, RequestId), String>,
}

impl PendingTable {
    pub(crate) fn insert(&mut self, correlation_id: String, pending: Pending) {
        self.deadlines
            .insert((pending.deadline, pending.id), correlation_id.clone());
        self.by_correlation.insert(correlation_id, pending);
    }

    pub(crate) fn remove(&mut self, correlation_id: &str) -> Option<Pending> {
        let pending = self.by_correlation.remove(correlation_id)?;
        self.deadlines.remove(&(pending.deadline, pending.id));
        Some(pending)
    }

    pub(crate) fn get(&self, correlation_id: &str) -> Option<&Pending> {
        self.by_correlation.get(correlation_id)
    }

    pub(crate) fn get_mut(&mut self, correlation_id: &str) -> Option<&mut Pending> {
        self.by_correlation.get_mut(correlation_id)
    }

    pub(crate) fn contains(&self, correlation_id: &str) -> bool {
        self.by_correlation.contains_key(correlation_id)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_correlation.len()
    }

    pub(crate) fn deadlines(&self) -> usize {
        self.deadlines.len()
    }

    /// The soonest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first_key_value().map(|((at, _), _)| *at)
    }

    /// The correlation ids of requests whose deadline is `now` or earlier, soonest first.
    pub(crate) fn expired(&self, now: Instant) -> Vec<String> {
        self.deadlines
            .iter()
            .take_while(|((at, _), _)| *at <= now)
            .map(|(_, c)| c.clone())
            .collect()
    }

    /// The correlation ids of requests published on the current connection.
    pub(crate) fn sent(&self) -> Vec<String> {
        self.by_correlation
            .iter()
            .filter(|(_, p)| p.sent)
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// Every correlation id.
    pub(crate) fn all(&self) -> Vec<String> {
        self.by_correlation.keys().cloned().collect()
    }
}
