//! Time: heartbeats both ways, the handshake and close timeouts, message TTL.
//!
//! With a negotiated heartbeat of `H` seconds the broker sends a heartbeat frame when it has sent
//! nothing for `H/2` (RabbitMQ's sender checks every half interval), and gives up on a client it
//! has heard nothing from for `2H` — two missed intervals: the connection is closed without a
//! word (as RabbitMQ does on a heartbeat timeout), its messages requeued. A message expires when
//! it is at the head of its queue and its TTL has passed.

use crate::broker::connection::Phase;
use crate::broker::{Broker, ConnectionId};
use nuropb_proto::amqp::frame::write_heartbeat;
use std::time::{Duration, Instant};

fn half(h: u16) -> Duration {
    Duration::from_millis(h as u64 * 500)
}

fn twice(h: u16) -> Duration {
    Duration::from_secs(h as u64 * 2)
}

impl Broker {
    /// The next instant at which [`handle_timeout`](Self::handle_timeout) has something to do,
    /// if any: a heartbeat to send, a client to give up on, a handshake or close-ok that took
    /// too long, a message to expire.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut at = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for conn in self.connections.values() {
            match conn.phase {
                Phase::Closed => continue,
                Phase::Running => {
                    if conn.heartbeat > 0 {
                        at(conn.send_mark.0.checked_add(half(conn.heartbeat)));
                        at(conn.last_recv.checked_add(twice(conn.heartbeat)));
                    }
                }
                _ => at(conn.deadline),
            }
        }
        for q in self.queues.values() {
            if !q.consumers.is_empty() || q.ready() > 0 {
                at(q.head_expiry());
            }
        }
        next
    }

    /// Does what is due at `now`: sends heartbeats, closes dead or stuck connections, expires
    /// messages (dead-lettering them) and delivers what that makes possible.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.tick(now);
        let ids: Vec<ConnectionId> = self.connections.keys().copied().collect();
        for c in ids {
            let Some(conn) = self.connections.get_mut(&c) else {
                continue;
            };
            match conn.phase {
                Phase::Closed => {}
                Phase::Running if conn.heartbeat > 0 => {
                    let h = conn.heartbeat;
                    if conn
                        .last_recv
                        .checked_add(twice(h))
                        .is_some_and(|t| t <= now)
                    {
                        self.close_silently(c);
                        continue;
                    }
                    if conn
                        .send_mark
                        .0
                        .checked_add(half(h))
                        .is_some_and(|t| t <= now)
                    {
                        let total = conn.out_total();
                        if total == conn.send_mark.1 {
                            write_heartbeat(&mut conn.out);
                        }
                        conn.send_mark = (now, conn.out_total());
                    }
                }
                Phase::Running => {}
                _ => {
                    if conn.deadline.is_some_and(|t| t <= now) {
                        self.close_silently(c);
                    }
                }
            }
        }
        let queues: Vec<_> = self
            .queues
            .iter()
            .filter(|(_, q)| q.head_expiry().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for q in queues {
            self.mark_dirty(q);
        }
        self.run_dispatch(now);
    }
}
