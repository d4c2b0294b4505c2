//! Faults a simulation can inject, each as it happens to a real deployment: a socket that dies,
//! a network that goes silent, a broker that restarts, an operator who deletes a queue or closes
//! a connection, a channel closed by the broker.

use crate::sim::{NodeId, Sim};
use std::time::Duration;

impl Sim {
    /// The node's socket dies at once, both ways: bytes on the wire are lost, the broker
    /// requeues the connection's unacknowledged deliveries, the node reads end of file. Returns
    /// whether the node had a socket.
    pub fn drop_connection(&mut self, node: NodeId) -> bool {
        if self.nodes[node.0].link.is_none() {
            return false;
        }
        self.drop_link(node.0);
        self.nodes[node.0].handle_eof(self.now);
        true
    }

    /// The node's network goes silent both ways, as in a partition or behind a firewall that
    /// drops everything: bytes on their way are lost, bytes either side sends from now on vanish,
    /// and neither side reads end of file. Each side can only find out from its own heartbeat
    /// timer — the node when nothing has arrived for two intervals, the broker likewise (it then
    /// requeues the connection's unacknowledged deliveries). The node's next connection reaches
    /// the broker normally. Returns whether the node had a socket.
    pub fn partition(&mut self, node: NodeId) -> bool {
        match self.nodes[node.0].link.take() {
            Some(link) => {
                self.unreachable.push(link.conn);
                true
            }
            None => false,
        }
    }

    /// The broker closes the node's connection with `connection.close(code, text)`, as
    /// RabbitMQ's management "close connection" does with `320` and `"CONNECTION_FORCED -
    /// Closed via management plugin"`. Returns whether the connection was open.
    pub fn force_close(&mut self, node: NodeId, code: u16, text: &str) -> bool {
        match self.connection_of(node) {
            Some(c) => self.broker.force_close(c, code, text),
            None => false,
        }
    }

    /// The broker closes the node's open channels with `channel.close(code, "NAME -
    /// explanation")`, as on a soft error (e.g. 406 `PRECONDITION_FAILED`). Returns how many it
    /// closed.
    pub fn close_channels(&mut self, node: NodeId, code: u16, explanation: &str) -> usize {
        let Some(c) = self.connection_of(node) else {
            return 0;
        };
        self.broker
            .channels(c)
            .into_iter()
            .filter(|&ch| self.broker.close_channel(c, ch, code, explanation))
            .count()
    }

    /// Deletes queue `name` of `vhost` as an operator would: its consumers get `basic.cancel`.
    /// Returns whether it existed.
    pub fn delete_queue(&mut self, vhost: &str, name: &str) -> bool {
        self.broker.delete_queue_named(vhost, name).is_some()
    }

    /// Restarts the broker: every connection gets `320 CONNECTION_FORCED` and goes; non-durable
    /// queues and all transient messages are lost (see
    /// [`Broker::restart`](crate::broker::Broker::restart)); for `down` afterwards new
    /// connections are refused.
    pub fn restart_broker(&mut self, down: Duration) {
        self.broker.restart(self.now);
        self.down_until = Some(self.now + down);
    }
}
