//! What an operator does to a running broker from outside the protocol — the testkit's
//! `rabbitmqctl`: delete a queue (its consumers get `basic.cancel`), close a channel with an
//! error, list a connection's channels. Fault injection for simulations is built on these, on
//! [`Broker::force_close`] and on [`Broker::restart`].

use crate::broker::error::AmqpError;
use crate::broker::{Broker, ConnectionId};

impl Broker {
    /// Deletes queue `name` of `vhost` as `rabbitmqctl delete_queue` does: its consumers get a
    /// `basic.cancel` (when their connection announced `consumer_cancel_notify`), its
    /// unacknowledged deliveries are forgotten, its messages dropped. Returns how many ready
    /// messages went with it, or `None` when there is no such queue.
    pub fn delete_queue_named(&mut self, vhost: &str, name: &str) -> Option<usize> {
        let v = *self.vhost_index.get(vhost)?;
        let id = *self.vhosts[v].queues.get(name)?;
        let dropped = self.delete_queue(id);
        if let Some(now) = self.now {
            self.run_dispatch(now);
        }
        Some(dropped)
    }

    /// Closes channel `ch` of connection `c` from the broker's side with `channel.close(code,
    /// "NAME - explanation")`, as RabbitMQ does on a soft error: its consumers are cancelled and
    /// its unacknowledged deliveries requeued at once, and the channel then waits for
    /// `close-ok`. Returns `false` when the channel is not open.
    pub fn close_channel(
        &mut self,
        c: ConnectionId,
        ch: u16,
        code: u16,
        explanation: &str,
    ) -> bool {
        let open = self
            .connections
            .get(&c)
            .and_then(|conn| conn.channels.get(&ch))
            .is_some_and(|channel| !channel.closing);
        if !open {
            return false;
        }
        self.channel_error(c, ch, AmqpError::new(code, explanation).at(0, 0));
        if let Some(now) = self.now {
            self.run_dispatch(now);
        }
        true
    }

    /// The open channels of connection `c` (those not closing), in number order.
    pub fn channels(&self, c: ConnectionId) -> Vec<u16> {
        self.connections.get(&c).map_or_else(Vec::new, |conn| {
            conn.channels
                .iter()
                .filter(|(_, channel)| !channel.closing)
                .map(|(&id, _)| id)
                .collect()
        })
    }
}
