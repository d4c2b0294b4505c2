//! The sizes of an endpoint's internal tables, so that tests and operators can check that none
//! of them grows without bound.

/// How many entries each of an endpoint's tables holds; see
/// [`Endpoint::footprint`](crate::mesh::Endpoint::footprint).
///
/// When the endpoint is idle — no request waiting, no handler running, nothing queued — every
/// field but `descriptions` and `service_keys` (one per service described) is zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Requests waiting for their response.
    pub pending: usize,
    /// Deadlines of those requests.
    pub deadlines: usize,
    /// Messages waiting for the connection.
    pub outbox: usize,
    /// Encrypted requests waiting for a public key.
    pub awaiting_key: usize,
    /// Describes the endpoint made for itself, unanswered.
    pub internal: usize,
    /// Deliveries handed to handlers, not completed.
    pub in_flight: usize,
    /// Deliveries not yet settled on the wire (acks waiting to be sent included).
    pub unsettled: usize,
    /// Fernet keys of encrypted requests sent, kept for their responses.
    pub sent_keys: usize,
    /// Fernet keys of encrypted requests received, kept to answer them.
    pub received_keys: usize,
    /// Service descriptions kept.
    pub descriptions: usize,
    /// Outputs waiting for [`Endpoint::poll_output`](crate::mesh::Endpoint::poll_output).
    pub events: usize,
}

impl Footprint {
    /// Whether every per-message table is empty (descriptions are per service, not per message).
    pub fn is_idle(&self) -> bool {
        *self
            == Footprint {
                descriptions: self.descriptions,
                ..Footprint::default()
            }
    }
}
