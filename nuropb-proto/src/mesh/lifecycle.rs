//! The life of an endpoint across connections: which node it connects to, when, and when it gives
//! up.
//!
//! - **Starting.** The first connection goes to the first node. A node that cannot be reached, or
//!   that takes the socket but fails before the endpoint is ready (the handshake, a refused
//!   declaration), counts as failed — once — and the next one is tried at once. When every node
//!   has failed in a row, the start fails, naming each node's reason.
//! - **Reconnecting.** Once the endpoint has been ready, a lost connection is tried again on the
//!   same node after the [`Backoff`]; a node that fails before it is ready again passes the turn
//!   to the next. The delay grows over one outage, which ends only once a connection has stayed
//!   ready for [`Backoff::healthy`]; after `max_reconnects` attempts in one outage (when set) the
//!   endpoint stops.
//!
//! It decides; the [`Endpoint`](crate::mesh::Endpoint) carries it out.

use crate::error::{ErrorKind, NuropbError};
use crate::mesh::backoff::Backoff;
use crate::mesh::random::Jitter;
use std::time::{Duration, Instant};

/// What comes after a connection ended.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Next {
    /// Connect to this node now.
    Connect(usize),
    /// Connect to the node whose turn it is once [`Lifecycle::due`] says so, after this delay.
    After(Duration),
    /// Give up.
    Stop(NuropbError),
}

/// Which node, when, and how many times.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    /// The nodes' names, in the order they are tried; at least one.
    nodes: Vec<String>,
    current: usize,
    /// Whether the connection to the current node got ready.
    current_ready: bool,
    /// The nodes that failed in a row since one was last ready: which, why, and whether a
    /// socket to it opened at all.
    failures: Vec<(usize, String, bool)>,
    ever_ready: bool,
    ready_since: Option<Instant>,
    /// When the last connection on which the endpoint was ready went.
    ready_lost_at: Option<Instant>,
    /// Reconnect attempts in this outage.
    attempts: u32,
    backoff: Backoff,
    max_reconnects: Option<u32>,
    reconnect_at: Option<Instant>,
    jitter: Jitter,
}

impl Lifecycle {
    /// The life of an endpoint that connects to `nodes` (none means one, unnamed).
    pub(crate) fn new(
        mut nodes: Vec<String>,
        backoff: Backoff,
        max_reconnects: Option<u32>,
        seed: u64,
    ) -> Self {
        if nodes.is_empty() {
            nodes.push("the broker".to_owned());
        }
        Lifecycle {
            nodes,
            current: 0,
            current_ready: false,
            failures: Vec::new(),
            ever_ready: false,
            ready_since: None,
            ready_lost_at: None,
            attempts: 0,
            backoff,
            max_reconnects,
            reconnect_at: None,
            jitter: Jitter::new(seed),
        }
    }

    /// The node connected to, or being connected to.
    pub(crate) fn current(&self) -> usize {
        self.current
    }

    pub(crate) fn set_backoff(&mut self, backoff: Backoff) {
        self.backoff = backoff;
    }

    /// The connection to the current node is ready.
    pub(crate) fn ready(&mut self, now: Instant) {
        self.current_ready = true;
        self.ever_ready = true;
        self.failures.clear();
        self.ready_since = Some(now);
    }

    /// The connection to the current node ended, or could not be made (`opened` false), for
    /// `reason`: what comes next. A node that never got ready counts as failed, once.
    pub(crate) fn lost(&mut self, reason: &str, opened: bool, now: Instant) -> Next {
        if self.current_ready {
            self.ready_lost_at = Some(now);
            // Ready long enough: a new outage, whose backoff starts over.
            if self
                .ready_since
                .is_some_and(|since| now.saturating_duration_since(since) >= self.backoff.healthy)
            {
                self.attempts = 0;
            }
        } else {
            self.failures
                .push((self.current, reason.to_owned(), opened));
            self.current = (self.current + 1) % self.nodes.len();
        }
        self.current_ready = false;
        if !self.ever_ready {
            if self.failures.len() >= self.nodes.len() {
                return Next::Stop(self.start_failed());
            }
            return Next::Connect(self.current);
        }
        if let Some(max) = self.max_reconnects
            && self.attempts >= max
        {
            return Next::Stop(NuropbError::new(
                ErrorKind::Transport,
                format!("gave up after {max} reconnect attempts: {reason}"),
            ));
        }
        let delay = self.backoff.delay(self.attempts, self.jitter.next());
        self.attempts = self.attempts.saturating_add(1);
        self.reconnect_at = Some(now + delay);
        Next::After(delay)
    }

    /// Why the start failed: every node, and what each did.
    fn start_failed(&self) -> NuropbError {
        let verb = match self.failures.iter().any(|(_, _, opened)| *opened) {
            true => "cannot start on",
            false => "cannot connect to",
        };
        let description = match self.failures.as_slice() {
            [(node, why, _)] => format!("{verb} {}: {why}", self.nodes[*node]),
            all => {
                let each: Vec<String> = all
                    .iter()
                    .map(|(node, why, _)| format!("{}: {why}", self.nodes[*node]))
                    .collect();
                format!("{verb} {} ({})", self.nodes.join(", "), each.join("; "))
            }
        };
        NuropbError::new(ErrorKind::Transport, description)
    }

    /// When a reconnect is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.reconnect_at
    }

    /// The node to connect to now, when a reconnect has fallen due.
    pub(crate) fn due(&mut self, now: Instant) -> Option<usize> {
        if self.reconnect_at.is_some_and(|at| at <= now) {
            self.reconnect_at = None;
            return Some(self.current);
        }
        None
    }

    /// No reconnect any more (the endpoint stops).
    pub(crate) fn cancel(&mut self) {
        self.reconnect_at = None;
    }

    /// Whether a connection on which the endpoint was ready went so recently that the broker may
    /// not have let it go yet: within two of its heartbeat intervals (60 s when `heartbeat` is 0,
    /// RabbitMQ's default) and half a minute.
    pub(crate) fn within_ghost_grace(&self, heartbeat: u16, now: Instant) -> bool {
        let heartbeat = match heartbeat {
            0 => 60,
            h => u64::from(h),
        };
        let grace = Duration::from_secs(2 * heartbeat + 30);
        self.ready_lost_at
            .is_some_and(|lost| now.saturating_duration_since(lost) < grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life(nodes: usize) -> Lifecycle {
        let names = (1..=nodes).map(|n| format!("node{n}")).collect();
        Lifecycle::new(names, Backoff::default(), None, 1)
    }

    #[test]
    fn a_start_tries_each_node_once_then_fails_naming_every_reason() {
        let t = Instant::now();
        let mut l = life(3);
        assert_eq!(l.lost("refused", false, t), Next::Connect(1));
        assert_eq!(l.lost("handshake failed", true, t), Next::Connect(2));
        let Next::Stop(e) = l.lost("timed out", false, t) else {
            panic!()
        };
        assert_eq!(
            e.description,
            "cannot start on node1, node2, node3 (node1: refused; node2: handshake failed; \
             node3: timed out)"
        );
        let mut l = life(1);
        let Next::Stop(e) = l.lost("Connection refused", false, t) else {
            panic!()
        };
        assert_eq!(e.description, "cannot connect to node1: Connection refused");
    }

    #[test]
    fn a_lost_ready_connection_comes_back_to_its_node_after_the_backoff() {
        let t = Instant::now();
        let mut l = life(2);
        l.ready(t);
        let Next::After(d) = l.lost("gone", true, t) else {
            panic!()
        };
        assert!(d <= Backoff::default().initial);
        assert_eq!(l.due(t), None);
        assert_eq!(l.due(t + d), Some(0), "the same node first");
        // It fails before it is ready: the next node, after a longer delay, counted once.
        let Next::After(d2) = l.lost("refused", false, t + d) else {
            panic!()
        };
        assert!(d2 > d / 2);
        assert_eq!(l.due(t + d + d2), Some(1));
        // Failing again does not stop it: it has been ready, so it retries for ever.
        let Next::After(_) = l.lost("refused", false, t + d + d2) else {
            panic!()
        };
        assert_eq!(l.current(), 0);
    }

    #[test]
    fn max_reconnects_stops_an_outage_that_does_not_end() {
        let t = Instant::now();
        let mut l = Lifecycle::new(vec!["a".into()], Backoff::default(), Some(2), 1);
        l.ready(t);
        assert!(matches!(l.lost("x", true, t), Next::After(_)));
        assert!(matches!(l.lost("x", true, t), Next::After(_)));
        assert!(matches!(l.lost("x", true, t), Next::Stop(_)));
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let t = Instant::now();
        let delays = |seed| {
            let mut l = Lifecycle::new(vec!["a".into()], Backoff::default(), None, seed);
            l.ready(t);
            (0..5)
                .map(|_| match l.lost("x", true, t) {
                    Next::After(d) => d,
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(delays(9), delays(9));
        assert_ne!(delays(9), delays(10));
    }
}
