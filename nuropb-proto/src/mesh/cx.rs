//! What the parts of an endpoint act through: its current session, its keys, its outputs, its
//! ids and the time. The [`Endpoint`](crate::mesh::Endpoint) lends them out for one call.

use crate::crypto::Encryptor;
use crate::mesh::output::Outputs;
use crate::mesh::random::CorrelationIds;
use crate::mesh::session::Session;
use std::time::Instant;

/// Borrowed for one call into a part.
pub(crate) struct Cx<'a> {
    /// The current session, if there is one.
    pub(crate) session: Option<&'a mut Session>,
    /// Whether the endpoint is ready: messages go out at once only then.
    pub(crate) ready: bool,
    pub(crate) crypto: &'a mut Encryptor,
    pub(crate) out: &'a mut Outputs,
    pub(crate) ids: &'a CorrelationIds,
    /// The time of the call (never earlier than the last).
    pub(crate) now: Instant,
    /// The wall clock at `now`, seconds since 1970 (Fernet timestamps).
    pub(crate) unix: u64,
}

impl Cx<'_> {
    /// The session, when the endpoint is ready to publish on it.
    pub(crate) fn ready_session(&mut self) -> Option<&mut Session> {
        if self.ready {
            self.session.as_deref_mut()
        } else {
            None
        }
    }
}
