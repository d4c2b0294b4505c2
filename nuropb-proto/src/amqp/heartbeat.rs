//! Heartbeats: when to send one, and when the peer counts as dead. Time comes in as arguments.
//!
//! With a negotiated interval `h`, a heartbeat frame goes out when nothing was sent for `h`, and the
//! peer is dead when nothing at all arrived for `2h` (AMQP 0-9-1 §4.2.7; RabbitMQ's rule too).

use std::time::{Duration, Instant};

/// What the heartbeat timer wants done at a given time.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Due {
    /// Nothing yet.
    Nothing,
    /// Send a heartbeat frame.
    Send,
    /// Nothing arrived for two intervals.
    Dead,
}

#[derive(Debug)]
pub(crate) struct Heartbeat {
    interval: Option<Duration>,
    last_sent: Instant,
    last_received: Instant,
}

impl Heartbeat {
    /// No heartbeats until [`Heartbeat::start`].
    pub(crate) fn new(now: Instant) -> Self {
        Heartbeat {
            interval: None,
            last_sent: now,
            last_received: now,
        }
    }

    /// Starts heartbeats with the negotiated interval in seconds (0 = none).
    pub(crate) fn start(&mut self, seconds: u16, now: Instant) {
        self.interval = (seconds > 0).then(|| Duration::from_secs(seconds.into()));
        self.last_sent = now;
        self.last_received = now;
    }

    /// Stops heartbeats (the connection is closing or closed).
    pub(crate) fn stop(&mut self) {
        self.interval = None;
    }

    /// Bytes went out at `now`.
    pub(crate) fn sent(&mut self, now: Instant) {
        self.last_sent = self.last_sent.max(now);
    }

    /// Bytes came in at `now`.
    pub(crate) fn received(&mut self, now: Instant) {
        self.last_received = self.last_received.max(now);
    }

    /// The next time [`Heartbeat::due`] may answer something else than [`Due::Nothing`].
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let h = self.interval?;
        Some((self.last_sent + h).min(self.last_received + 2 * h))
    }

    /// What is due at `now`.
    pub(crate) fn due(&self, now: Instant) -> Due {
        let Some(h) = self.interval else {
            return Due::Nothing;
        };
        if now >= self.last_received + 2 * h {
            Due::Dead
        } else if now >= self.last_sent + h {
            Due::Send
        } else {
            Due::Nothing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_after_an_idle_interval_and_dies_after_two_silent_ones() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut hb = Heartbeat::new(t0);
        assert_eq!(hb.deadline(), None);
        hb.start(10, t0);
        assert_eq!(hb.deadline(), Some(t0 + s(10)));
        assert_eq!(hb.due(t0 + s(9)), Due::Nothing);
        assert_eq!(hb.due(t0 + s(10)), Due::Send);
        hb.sent(t0 + s(10));
        hb.received(t0 + s(15));
        assert_eq!(hb.deadline(), Some(t0 + s(20)));
        hb.sent(t0 + s(20));
        assert_eq!(hb.deadline(), Some(t0 + s(30)));
        assert_eq!(hb.due(t0 + s(34)), Due::Send);
        assert_eq!(hb.due(t0 + s(35)), Due::Dead);
        hb.stop();
        assert_eq!(hb.due(t0 + s(100)), Due::Nothing);
        assert_eq!(hb.deadline(), None);
    }

    #[test]
    fn zero_means_no_heartbeats() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(t0);
        hb.start(0, t0);
        assert_eq!(hb.deadline(), None);
        assert_eq!(hb.due(t0 + Duration::from_secs(1000)), Due::Nothing);
    }
}
