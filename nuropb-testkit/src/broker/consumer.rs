//! Consumers: `basic.qos` (per-consumer and per-channel prefetch), `basic.consume` (server tags,
//! exclusive consumers), `basic.cancel`, and what cancelling does to an auto-delete queue.

use crate::broker::error::{AmqpError, resource};
use crate::broker::queue::{ConsumerId, QueueId};
use crate::broker::{Broker, ConnectionId, wire};
use amq_protocol::protocol::{AMQPClass, basic};

/// One consumer of a queue.
#[derive(Debug)]
pub(crate) struct Consumer {
    pub(crate) tag: String,
    pub(crate) conn: ConnectionId,
    pub(crate) channel: u16,
    pub(crate) queue: QueueId,
    /// Deliveries need no acknowledgement.
    pub(crate) no_ack: bool,
    /// Its prefetch (0 = unlimited), fixed when it was created.
    pub(crate) prefetch: u16,
    /// Deliveries to it not yet settled.
    pub(crate) unacked: u32,
}

impl Broker {
    pub(crate) fn basic_qos(
        &mut self,
        c: ConnectionId,
        ch: u16,
        m: basic::Qos,
    ) -> Result<(), AmqpError> {
        // A non-zero prefetch_size (which amq-protocol does not keep) was refused by the input
        // layer with RabbitMQ's 540.
        let channel = self.channel_mut(c, ch)?;
        if m.global {
            channel.global_prefetch = m.prefetch_count;
        } else {
            channel.consumer_prefetch = m.prefetch_count;
        }
        let queues: Vec<QueueId> = if m.global {
            let consumers = channel.consumers.clone();
            consumers
                .iter()
                .filter_map(|id| self.consumers.get(id).map(|x| x.queue))
                .collect()
        } else {
            Vec::new()
        };
        for q in queues {
            self.mark_dirty(q);
        }
        let ok = AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {}));
        wire::method(&mut self.conn_mut(c)?.out, ch, &ok);
        Ok(())
    }

    pub(crate) fn basic_consume(
        &mut self,
        c: ConnectionId,
        ch: u16,
        m: basic::Consume,
    ) -> Result<(), AmqpError> {
        let max = self.config.max_consumers_per_channel;
        let tag = m.consumer_tag.as_str();
        {
            let consumers = &self.consumers;
            let channel = self.connections.get(&c).and_then(|x| x.channels.get(&ch));
            let Some(channel) = channel else {
                return Err(AmqpError::internal("channel gone"));
            };
            if !tag.is_empty()
                && channel
                    .consumers
                    .iter()
                    .any(|id| consumers.get(id).is_some_and(|x| x.tag == tag))
            {
                return Err(AmqpError::not_allowed(format_args!(
                    "attempt to reuse consumer tag '{tag}'"
                )));
            }
            if channel.consumers.len() >= max {
                return Err(AmqpError::not_allowed(format_args!(
                    "reached maximum ({max}) of consumers per channel"
                )));
            }
        }
        let name = self.queue_name(c, ch, m.queue.as_str())?;
        let qid = self.usable_queue(c, &name)?;
        let vid = self.vhost_of(c)?;
        let q = self
            .queues
            .get_mut(&qid)
            .ok_or_else(|| AmqpError::internal("queue gone"))?;
        if q.exclusive_consumer || (m.exclusive && !q.consumers.is_empty()) {
            return Err(AmqpError::access_refused(format_args!(
                "{} in exclusive use",
                resource("queue", &name, &self.vhosts[vid].name)
            )));
        }
        let tag = if tag.is_empty() {
            self.names.name("amq.ctag-")
        } else {
            tag.to_owned()
        };
        let id = self.next_consumer;
        self.next_consumer += 1;
        q.consumers.push_back(id);
        q.had_consumer = true;
        q.exclusive_consumer = m.exclusive;
        let channel = self.channel_mut(c, ch)?;
        channel.consumers.push(id);
        let prefetch = channel.consumer_prefetch;
        self.consumers.insert(
            id,
            Consumer {
                tag: tag.clone(),
                conn: c,
                channel: ch,
                queue: qid,
                no_ack: m.no_ack,
                prefetch,
                unacked: 0,
            },
        );
        let ok = AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
            consumer_tag: wire::short(&tag),
        }));
        self.write_reply(c, ch, m.nowait, ok)?;
        self.mark_dirty(qid);
        Ok(())
    }

    pub(crate) fn basic_cancel(
        &mut self,
        c: ConnectionId,
        ch: u16,
        m: basic::Cancel,
    ) -> Result<(), AmqpError> {
        let tag = m.consumer_tag.as_str();
        let Broker {
            consumers,
            connections,
            ..
        } = self;
        let channel = connections
            .get_mut(&c)
            .and_then(|conn| conn.channels.get_mut(&ch))
            .ok_or_else(|| AmqpError::internal("channel gone"))?;
        let found = channel
            .consumers
            .iter()
            .position(|id| consumers.get(id).is_some_and(|x| x.tag == tag));
        if let Some(at) = found {
            let id = channel.consumers.remove(at);
            self.remove_consumer(id);
        }
        let ok = AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
            consumer_tag: wire::short(tag),
        }));
        self.write_reply(c, ch, m.nowait, ok)
    }

    /// Removes a consumer from its queue (its channel's list is the caller's business). An
    /// auto-delete queue that had consumers and has none left is deleted.
    pub(crate) fn remove_consumer(&mut self, id: ConsumerId) {
        let Some(consumer) = self.consumers.remove(&id) else {
            return;
        };
        let Some(q) = self.queues.get_mut(&consumer.queue) else {
            return;
        };
        q.consumers.retain(|x| *x != id);
        if q.consumers.is_empty() {
            q.exclusive_consumer = false;
            if q.auto_delete && q.had_consumer {
                self.delete_queue(consumer.queue);
            }
        }
    }

    /// Marks the queues of connection `c`'s consumers for dispatch (its output drained).
    pub(crate) fn wake_consumers_of(&mut self, c: ConnectionId) {
        let queues: Vec<QueueId> = self
            .consumers
            .values()
            .filter(|x| x.conn == c)
            .map(|x| x.queue)
            .collect();
        for q in queues {
            self.mark_dirty(q);
        }
    }
}
