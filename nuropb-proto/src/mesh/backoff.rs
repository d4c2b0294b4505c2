//! The reconnect schedule: exponential backoff with jitter, as data.

use std::time::Duration;

/// Exponential backoff: attempt `n` waits `min(max, initial · 2ⁿ)`, scaled by a jitter factor
/// between ½ and 1 so that a fleet of participants does not reconnect in step.
///
/// Attempts count from the start of an outage, and an outage ends only once a connection has
/// stayed ready for [`Backoff::healthy`]: a connection that fails again soon after it started
/// is the same outage, so its delay keeps growing to the cap instead of starting over.
///
/// ```
/// use nuropb_proto::mesh::Backoff;
/// use std::time::Duration;
///
/// let backoff = Backoff::default();
/// assert_eq!(backoff.delay(0, 1.0), Duration::from_millis(100));
/// assert_eq!(backoff.delay(3, 1.0), Duration::from_millis(800));
/// assert_eq!(backoff.delay(3, 0.0), Duration::from_millis(400));
/// assert_eq!(backoff.delay(30, 1.0), Duration::from_secs(30));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// How long a connection must stay ready before its loss starts a new outage (at
    /// `initial` again).
    pub healthy: Duration,
}

impl Default for Backoff {
    /// 100 ms, doubling up to 30 s; an outage ends after 30 s ready.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            healthy: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0 for the first retry); `jitter` in `[0, 1]` comes from
    /// the caller's randomness.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let factor = 2f64.powi(attempt.min(63) as i32);
        let full = self.initial.mul_f64(factor).min(self.max);
        full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}
