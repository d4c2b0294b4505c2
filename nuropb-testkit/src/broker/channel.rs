//! A channel's state: content being assembled, consumers, unacknowledged deliveries, QoS, confirm
//! mode; and the channel class (`channel.open`, `close`, `close-ok`, `flow`).

use crate::broker::error::AmqpError;
use crate::broker::message::{Entry, Message};
use crate::broker::props::Facts;
use crate::broker::queue::{ConsumerId, QueueId};
use crate::broker::{Broker, ConnectionId, wire};
use amq_protocol::protocol::{AMQPClass, channel};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// The arguments of a `basic.publish` waiting for its content.
#[derive(Clone, Debug)]
pub(crate) struct PublishArgs {
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    pub(crate) mandatory: bool,
    pub(crate) immediate: bool,
}

/// The content-carrying method a header and body are being assembled for.
#[derive(Clone, Debug)]
pub(crate) enum Pending {
    /// `basic.publish`.
    Publish(PublishArgs),
    /// Another content method (`basic.deliver`, `return`, `get-ok`), which a client may not send:
    /// its class and method ids, to refuse it once its content is in.
    Other(u16, u16),
}

impl Pending {
    pub(crate) fn ids(&self) -> (u16, u16) {
        match self {
            Pending::Publish(_) => (60, 40),
            Pending::Other(c, m) => (*c, *m),
        }
    }
}

/// RabbitMQ's command assembler state for one channel.
#[derive(Debug, Default)]
pub(crate) enum Content {
    /// Expecting a method frame.
    #[default]
    Idle,
    /// A content method came; expecting its content header.
    Header { method: Pending, discard: bool },
    /// Expecting body frames.
    Body(Box<Body>),
}

/// A content method whose header came, waiting for its body frames.
#[derive(Debug)]
pub(crate) struct Body {
    pub(crate) method: Pending,
    pub(crate) facts: Facts,
    pub(crate) raw_properties: Vec<u8>,
    pub(crate) body: Vec<u8>,
    pub(crate) remaining: u64,
    /// Count the bytes but keep none (the channel is closing or the message is refused).
    pub(crate) discard: bool,
}

/// A message published in a transaction: routed when published, stored at `tx.commit`.
#[derive(Debug)]
pub(crate) struct Routed {
    pub(crate) queues: Vec<QueueId>,
    pub(crate) msg: Arc<Message>,
    pub(crate) mandatory: bool,
}

/// What an open transaction holds.
#[derive(Debug, Default)]
pub(crate) struct Tx {
    pub(crate) publishes: Vec<Routed>,
    /// Body bytes of `publishes`.
    pub(crate) bytes: usize,
    /// Deliveries settled in the transaction: off the channel's unacknowledged list, applied at
    /// commit, put back on rollback.
    pub(crate) settles: Vec<(Unacked, Settle)>,
}

/// A delivery waiting for `basic.ack`, `nack` or `reject`.
#[derive(Debug)]
pub(crate) struct Unacked {
    pub(crate) tag: u64,
    pub(crate) queue: QueueId,
    /// The consumer it went to (`None` for `basic.get`).
    pub(crate) consumer: Option<ConsumerId>,
    pub(crate) entry: Entry,
    /// When it was delivered (for the consumer timeout).
    pub(crate) delivered_at: Instant,
}

/// One open (or closing) channel.
#[derive(Debug, Default)]
pub(crate) struct Channel {
    /// The broker sent `channel.close` and waits for `close-ok`: methods are ignored.
    pub(crate) closing: bool,
    pub(crate) content: Content,
    /// Its consumers, in creation order.
    pub(crate) consumers: Vec<ConsumerId>,
    /// Deliveries not yet settled, in delivery-tag order.
    pub(crate) unacked: VecDeque<Unacked>,
    /// The last delivery tag used (tags start at 1).
    pub(crate) last_tag: u64,
    /// `basic.qos global=false`: the prefetch of consumers created from now on.
    pub(crate) consumer_prefetch: u16,
    /// `basic.qos global=true`: the limit across the channel's consumers.
    pub(crate) global_prefetch: u16,
    /// Unsettled deliveries to manual-ack consumers (what `global_prefetch` limits).
    pub(crate) limited: u32,
    /// Confirm mode: the sequence number of the next publish.
    pub(crate) confirm_next: Option<u64>,
    /// Transaction mode (`tx.select`): what the current transaction holds until `tx.commit`.
    pub(crate) tx: Option<Tx>,
    /// The last queue declared on the channel, for methods naming queue `""`.
    pub(crate) last_queue: Option<String>,
}

impl Channel {
    /// The position of delivery `tag` among the unacknowledged.
    pub(crate) fn unacked_position(&self, tag: u64) -> Option<usize> {
        if self.unacked.front()?.tag == tag {
            return Some(0);
        }
        let at = self.unacked.partition_point(|u| u.tag < tag);
        (self.unacked.get(at)?.tag == tag).then_some(at)
    }
}

impl Broker {
    /// `channel.open` on a channel number not in use.
    pub(crate) fn channel_open(&mut self, c: ConnectionId, ch: u16) -> Result<(), AmqpError> {
        let max = self.config.channel_max;
        let conn = self.conn_mut(c)?;
        let limit = if conn.channel_max == 0 {
            max
        } else {
            conn.channel_max
        };
        if conn.channels.len() >= limit as usize {
            return Err(AmqpError::not_allowed(format_args!(
                "number of channels opened ({}) has reached the negotiated channel_max ({})",
                conn.channels.len(),
                limit
            )));
        }
        conn.channels.insert(ch, Channel::default());
        let open_ok = AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {}));
        wire::method(&mut conn.out, ch, &open_ok);
        Ok(())
    }

    /// The client closes a channel: reply `close-ok`, settle its state.
    pub(crate) fn channel_close(&mut self, c: ConnectionId, ch: u16) -> Result<(), AmqpError> {
        self.release_channel(c, ch);
        let conn = self.conn_mut(c)?;
        conn.channels.remove(&ch);
        let close_ok = AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}));
        wire::method(&mut conn.out, ch, &close_ok);
        Ok(())
    }

    /// `channel.flow`: RabbitMQ accepts `active=true` only.
    pub(crate) fn channel_flow(
        &mut self,
        c: ConnectionId,
        ch: u16,
        active: bool,
    ) -> Result<(), AmqpError> {
        if !active {
            return Err(AmqpError::not_implemented("active=false"));
        }
        let conn = self.conn_mut(c)?;
        let ok = AMQPClass::Channel(channel::AMQPMethod::FlowOk(channel::FlowOk { active }));
        wire::method(&mut conn.out, ch, &ok);
        Ok(())
    }

    /// The broker closes a channel with a soft error: send `channel.close`, settle its state (its
    /// consumers are cancelled and its unacknowledged messages requeued at once), then ignore
    /// everything on it but `close`/`close-ok`.
    pub(crate) fn channel_error(&mut self, c: ConnectionId, ch: u16, err: AmqpError) {
        self.release_channel(c, ch);
        let Some(conn) = self.connections.get_mut(&c) else {
            return;
        };
        let Some(channel) = conn.channels.get_mut(&ch) else {
            return;
        };
        channel.closing = true;
        let (class_id, method_id) = err.class_method();
        let close = AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: err.code,
            reply_text: wire::reply_text(&err.text),
            class_id,
            method_id,
        }));
        wire::method(&mut conn.out, ch, &close);
    }

    /// Cancels a channel's consumers and requeues its unacknowledged deliveries; the channel
    /// entry itself stays.
    pub(crate) fn release_channel(&mut self, c: ConnectionId, ch: u16) {
        let Some(channel) = self
            .connections
            .get_mut(&c)
            .and_then(|conn| conn.channels.get_mut(&ch))
        else {
            return;
        };
        let mut unacked: Vec<Unacked> = std::mem::take(&mut channel.unacked).into();
        let consumers = std::mem::take(&mut channel.consumers);
        channel.limited = 0;
        if let Some(tx) = channel.tx.as_mut() {
            // Settlements of an uncommitted transaction never happened.
            unacked.extend(tx.settles.drain(..).map(|(u, _)| u));
            tx.publishes.clear();
            tx.bytes = 0;
        }
        for u in unacked {
            self.settle(u, Settle::Requeue);
        }
        for id in consumers {
            self.remove_consumer(id);
        }
    }
}

/// What to do with a settled delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Settle {
    /// `basic.ack`: done.
    Ack,
    /// Back to its queue, flagged redelivered.
    Requeue,
    /// Dead-letter (or drop) with reason `rejected`.
    Reject,
}
