//! Time: heartbeats both ways, the handshake and close timeouts, message TTL.
//!
//! With a negotiated heartbeat of `H` seconds the broker sends a heartbeat frame when it has sent
//! nothing for `H/2` (RabbitMQ's sender checks every half interval), and gives up on a client it
//! has heard nothing from for `2H` — two missed intervals: the connection is closed without a
//! word (as RabbitMQ does on a heartbeat timeout), its messages requeued. A message expires when
//! it is at the head of its queue and its TTL has passed. A delivery left unacknowledged for
//! [`BrokerConfig::consumer_timeout`](crate::broker::BrokerConfig::consumer_timeout) closes its
//! channel, as RabbitMQ's `consumer_timeout` does.

use crate::broker::connection::Phase;
use crate::broker::error::AmqpError;
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
    /// Closes every channel whose oldest delivery has waited `timeout` for its acknowledgement.
    fn consumer_timeouts(&mut self, now: Instant, timeout: Duration) {
        let late: Vec<(ConnectionId, u16)> = self
            .connections
            .iter()
            .filter(|(_, conn)| conn.phase == Phase::Running)
            .flat_map(|(&c, conn)| {
                conn.channels
                    .iter()
                    .filter(|(_, ch)| {
                        !ch.closing
                            && ch
                                .unacked
                                .front()
                                .and_then(|u| u.delivered_at.checked_add(timeout))
                                .is_some_and(|t| t <= now)
                    })
                    .map(move |(&n, _)| (c, n))
            })
            .collect();
        for (c, ch) in late {
            let err = AmqpError::precondition_failed(format_args!(
                "delivery acknowledgement on channel {ch} timed out. Timeout value used: {} ms. \
                 This timeout value can be configured, see consumers doc guide to learn more",
                timeout.as_millis()
            ))
            .at(0, 0);
            self.channel_error(c, ch, err);
        }
    }

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
                    if let Some(timeout) = self.config.consumer_timeout {
                        for channel in conn.channels.values().filter(|ch| !ch.closing) {
                            if let Some(u) = channel.unacked.front() {
                                at(u.delivered_at.checked_add(timeout));
                            }
                        }
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
        if let Some(timeout) = self.config.consumer_timeout {
            self.consumer_timeouts(now, timeout);
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
