//! Whether a participant is connected, as its connection driver last knew: for health checks
//! and readiness probes.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// Where a participant's connection stands; see [`Client::state`](crate::Client::state).
///
/// ```
/// use nuropb_api::ConnectionState;
///
/// // A readiness probe: ready to take calls only while connected.
/// fn ready(state: ConnectionState) -> bool {
///     state == ConnectionState::Ready
/// }
/// assert!(!ready(ConnectionState::Reconnecting));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connected, with its queues and consumers set up: calls go out at once.
    Ready,
    /// The connection was lost or refused; reconnecting with backoff. Requests made meanwhile
    /// wait for it, up to their deadline; commands and events wait within the send limits.
    Reconnecting,
    /// Stopped for good: shut down, or refused in a way a reconnect cannot change.
    Stopped,
}

/// The state, shared by a participant's handles and its driver.
#[derive(Debug)]
pub(crate) struct SharedState {
    state: AtomicU8,
    /// Messages the participant could not read.
    unreadable: AtomicU64,
}

impl SharedState {
    /// Ready: handles exist only once the participant is.
    pub(crate) fn new() -> Self {
        SharedState {
            state: AtomicU8::new(0),
            unreadable: AtomicU64::new(0),
        }
    }

    /// Counts a message that could not be read.
    pub(crate) fn count_unreadable(&self) {
        self.unreadable.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages that could not be read.
    pub(crate) fn unreadable(&self) -> u64 {
        self.unreadable.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, state: ConnectionState) {
        let code = match state {
            ConnectionState::Ready => 0,
            ConnectionState::Reconnecting => 1,
            ConnectionState::Stopped => 2,
        };
        self.state.store(code, Ordering::Release);
    }

    pub(crate) fn get(&self) -> ConnectionState {
        match self.state.load(Ordering::Acquire) {
            0 => ConnectionState::Ready,
            1 => ConnectionState::Reconnecting,
            _ => ConnectionState::Stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_it_is_told() {
        let state = SharedState::new();
        assert_eq!(state.get(), ConnectionState::Ready);
        for s in [
            ConnectionState::Reconnecting,
            ConnectionState::Stopped,
            ConnectionState::Ready,
        ] {
            state.set(s);
            assert_eq!(state.get(), s);
        }
    }
}
