//! The bound on what a participant has taken on but not yet sent.
//!
//! [`Client::command`](crate::Client::command) and
//! [`Client::publish_event`](crate::Client::publish_event) return at once, as Python's do, so
//! nothing else holds back a publisher that is faster than the broker takes its messages, one
//! whose connection the broker has blocked, or one whose connection is down. The handles count
//! the commands and events they queue for the connection driver, the driver reports the messages
//! waiting for the connection and the bytes it has not yet written, and past either limit the
//! handles refuse more with a `NuropbTransportError` rather than accept what would be dropped or
//! queued without end.

use nuropb_proto::{ErrorKind, NuropbError};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Limits on commands and events not yet sent; give them to
/// [`Connector::send_limits`](crate::Connector::send_limits).
///
/// ```
/// use nuropb_api::SendLimits;
///
/// let limits = SendLimits { messages: 10_000, ..SendLimits::default() };
/// assert_eq!(limits.bytes, 16 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendLimits {
    /// Commands and events queued for the connection driver, not yet taken by it, together with
    /// the messages waiting for the connection while it is down.
    pub messages: usize,
    /// Bytes the driver has taken on but not yet written to the socket.
    pub bytes: usize,
}

impl Default for SendLimits {
    /// 65,536 messages, 16 MiB.
    fn default() -> Self {
        SendLimits {
            messages: 65_536,
            bytes: 16 << 20,
        }
    }
}

/// What waits to be sent, against the [`SendLimits`]; see
/// [`Client::unsent`](crate::Client::unsent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unsent {
    /// Commands and events queued for the connection driver, and messages waiting for the
    /// connection while it is down.
    pub messages: usize,
    /// Bytes the driver has taken on but not yet written to the socket.
    pub bytes: usize,
}

impl Unsent {
    /// Whether either level has reached `fraction` (0 to 1) of its limit: a publisher that would
    /// rather wait than be refused pauses while this holds.
    ///
    /// ```
    /// use nuropb_api::{SendLimits, Unsent};
    ///
    /// let limits = SendLimits { messages: 100, bytes: 1000 };
    /// assert!(!Unsent { messages: 49, bytes: 499 }.reaches(0.5, &limits));
    /// assert!(Unsent { messages: 50, bytes: 0 }.reaches(0.5, &limits));
    /// ```
    pub fn reaches(&self, fraction: f64, limits: &SendLimits) -> bool {
        let at = |limit: usize| (limit as f64 * fraction) as usize;
        self.messages >= at(limits.messages) || self.bytes >= at(limits.bytes)
    }
}

/// Shared by a participant's handles and its driver.
#[derive(Debug)]
pub(crate) struct Backlog {
    limits: SendLimits,
    queued: AtomicUsize,
    /// Messages waiting for the connection, as the driver last saw.
    waiting: AtomicUsize,
    unwritten: AtomicUsize,
}

impl Backlog {
    pub(crate) fn new(limits: SendLimits) -> Self {
        Backlog {
            limits,
            queued: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            unwritten: AtomicUsize::new(0),
        }
    }

    /// Takes a place for one more command or event; an error when none is left.
    pub(crate) fn admit(&self) -> Result<(), NuropbError> {
        let unwritten = self.unwritten.load(Ordering::Acquire);
        if unwritten >= self.limits.bytes {
            return Err(full(format!(
                "{unwritten} bytes wait to be written already"
            )));
        }
        let waiting = self.waiting.load(Ordering::Acquire);
        if self.queued.fetch_add(1, Ordering::AcqRel) + waiting >= self.limits.messages {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(full(format!(
                "{} messages wait to be sent already",
                self.limits.messages
            )));
        }
        Ok(())
    }

    /// `n` commands or events left the queue: taken by the driver (and counted as what they
    /// became), or never sent.
    pub(crate) fn release(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }

    /// What the driver holds: messages waiting for the connection, bytes not yet written.
    pub(crate) fn set_held(&self, waiting: usize, unwritten: usize) {
        self.waiting.store(waiting, Ordering::Release);
        self.unwritten.store(unwritten, Ordering::Release);
    }

    /// Messages queued or waiting for the connection, and bytes not yet written.
    pub(crate) fn levels(&self) -> Unsent {
        Unsent {
            messages: self.queued.load(Ordering::Acquire) + self.waiting.load(Ordering::Acquire),
            bytes: self.unwritten.load(Ordering::Acquire),
        }
    }

    /// The limits.
    pub(crate) fn limits(&self) -> SendLimits {
        self.limits
    }
}

fn full(what: String) -> NuropbError {
    NuropbError::new(
        ErrorKind::Transport,
        format!(
            "not sent: {what} (the broker takes messages more slowly than they come, or has \
             blocked the connection); try again once some are written"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_either_limit_and_takes_again_once_below() {
        let backlog = Backlog::new(SendLimits {
            messages: 2,
            bytes: 100,
        });
        backlog.admit().unwrap();
        backlog.admit().unwrap();
        let error = backlog.admit().unwrap_err();
        assert_eq!(error.kind, ErrorKind::Transport);
        assert!(error.description.contains("2 messages"), "{error}");
        backlog.release(1);
        backlog.admit().unwrap();
        backlog.release(1);
        backlog.release(1);
        backlog.set_held(0, 100);
        let error = backlog.admit().unwrap_err();
        assert!(error.description.contains("100 bytes"), "{error}");
        backlog.set_held(0, 99);
        backlog.admit().unwrap();
        assert_eq!(
            backlog.levels(),
            Unsent {
                messages: 1,
                bytes: 99
            }
        );
        // Waiting for the connection counts as queued.
        backlog.set_held(1, 0);
        assert!(backlog.admit().is_err());
        assert_eq!(
            backlog.levels(),
            Unsent {
                messages: 2,
                bytes: 0
            }
        );
    }
}
