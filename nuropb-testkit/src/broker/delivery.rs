//! Delivering: dispatch from queues to consumers (round robin among those with prefetch room),
//! expiry at the head, and `basic.get`.

use crate::broker::channel::Unacked;
use crate::broker::connection::Phase;
use crate::broker::error::AmqpError;
use crate::broker::message::DeathReason;
use crate::broker::queue::{ConsumerId, QueueId};
use crate::broker::wire::{self, BASIC};
use crate::broker::{Broker, ConnectionId};
use amq_protocol::protocol::{AMQPClass, basic};
use nuropb_proto::amqp::frame::write_content_raw;
use std::time::Instant;

/// Whether a consumer can take one more message, and why not.
enum Room {
    Yes,
    No,
    /// Its connection's output is over budget: wake it when drained.
    Starved(ConnectionId),
}

impl Broker {
    /// Publishes pending dead letters and dispatches every queue that may deliver, until nothing
    /// moves.
    pub(crate) fn run_dispatch(&mut self, now: Instant) {
        loop {
            if !self.dead.is_empty() {
                self.process_dead_letters(now);
            }
            let Some(q) = self.dirty.pop() else {
                break;
            };
            if let Some(queue) = self.queues.get_mut(&q) {
                queue.dirty = false;
                self.dispatch(q, now);
            }
        }
    }

    fn room(&self, id: ConsumerId) -> Room {
        let Some(consumer) = self.consumers.get(&id) else {
            return Room::No;
        };
        let Some(conn) = self.connections.get(&consumer.conn) else {
            return Room::No;
        };
        if conn.phase != Phase::Running {
            return Room::No;
        }
        let Some(channel) = conn.channels.get(&consumer.channel) else {
            return Room::No;
        };
        if channel.closing {
            return Room::No;
        }
        if !consumer.no_ack {
            if consumer.prefetch != 0 && consumer.unacked >= consumer.prefetch as u32 {
                return Room::No;
            }
            if channel.global_prefetch != 0 && channel.limited >= channel.global_prefetch as u32 {
                return Room::No;
            }
            if channel.unacked.len() >= self.config.max_unacked_per_channel {
                return Room::No;
            }
        }
        if conn.out.len() >= self.config.max_output_buffer {
            return Room::Starved(consumer.conn);
        }
        Room::Yes
    }

    /// Delivers from queue `q` while it has messages and a consumer has room, then expires what
    /// is due at its head. A message whose TTL ends right now (TTL 0) still goes to a consumer
    /// that is ready for it, as on RabbitMQ.
    fn dispatch(&mut self, q: QueueId, now: Instant) {
        self.deliver_ready(q, now);
        while let Some(e) = self
            .queues
            .get_mut(&q)
            .and_then(|x| x.pop_expired(now, false))
        {
            self.kill(q, e, DeathReason::Expired);
            self.deliver_ready(q, now);
        }
    }

    fn deliver_ready(&mut self, q: QueueId, now: Instant) {
        loop {
            while let Some(e) = self
                .queues
                .get_mut(&q)
                .and_then(|x| x.pop_expired(now, true))
            {
                self.kill(q, e, DeathReason::Expired);
            }
            let Some(queue) = self.queues.get_mut(&q) else {
                return;
            };
            if queue.ready() == 0 || queue.consumers.is_empty() {
                return;
            }
            let n = queue.consumers.len();
            let mut chosen = None;
            for _ in 0..n {
                let Some(queue) = self.queues.get_mut(&q) else {
                    return;
                };
                let Some(&id) = queue.consumers.front() else {
                    return;
                };
                match self.room(id) {
                    Room::Yes => {
                        chosen = Some(id);
                        break;
                    }
                    Room::No => {}
                    Room::Starved(c) => {
                        if let Some(conn) = self.connections.get_mut(&c) {
                            conn.starved = true;
                        }
                    }
                }
                if let Some(queue) = self.queues.get_mut(&q) {
                    queue.consumers.rotate_left(1);
                }
            }
            let Some(id) = chosen else {
                return;
            };
            self.deliver(q, id, now);
        }
    }

    /// Delivers the head of queue `q` to consumer `id` (which has room).
    fn deliver(&mut self, q: QueueId, id: ConsumerId, now: Instant) {
        let Broker {
            queues,
            consumers,
            connections,
            ..
        } = self;
        let (Some(queue), Some(consumer)) = (queues.get_mut(&q), consumers.get_mut(&id)) else {
            return;
        };
        let Some(conn) = connections.get_mut(&consumer.conn) else {
            return;
        };
        let Some(channel) = conn.channels.get_mut(&consumer.channel) else {
            return;
        };
        let Some(entry) = queue.pop() else {
            return;
        };
        queue.consumers.rotate_left(1);
        channel.last_tag += 1;
        let tag = channel.last_tag;
        let msg = &entry.msg;
        wire::write_deliver(
            &mut conn.out,
            consumer.channel,
            &consumer.tag,
            tag,
            entry.redelivered,
            &msg.exchange,
            &msg.routing_key,
        );
        write_content_raw(
            &mut conn.out,
            consumer.channel,
            BASIC,
            &msg.raw_properties,
            &msg.body,
            conn.frame_max,
        );
        if !consumer.no_ack {
            consumer.unacked += 1;
            channel.limited += 1;
            queue.unacked += 1;
            channel.unacked.push_back(Unacked {
                tag,
                queue: q,
                consumer: Some(id),
                entry,
                delivered_at: now,
            });
        }
    }

    pub(crate) fn basic_get(
        &mut self,
        c: ConnectionId,
        ch: u16,
        m: basic::Get,
    ) -> Result<(), AmqpError> {
        let now = self
            .now
            .ok_or_else(|| AmqpError::internal("get before any time was given"))?;
        let name = self.queue_name(c, ch, m.queue.as_str())?;
        let q = self.usable_queue(c, &name)?;
        while let Some(e) = self
            .queues
            .get_mut(&q)
            .and_then(|x| x.pop_expired(now, false))
        {
            self.kill(q, e, DeathReason::Expired);
        }
        let Broker {
            queues,
            connections,
            ..
        } = self;
        let queue = queues
            .get_mut(&q)
            .ok_or_else(|| AmqpError::internal("queue gone"))?;
        let conn = connections
            .get_mut(&c)
            .ok_or_else(|| AmqpError::internal("connection gone"))?;
        let channel = conn
            .channels
            .get_mut(&ch)
            .ok_or_else(|| AmqpError::internal("channel gone"))?;
        let Some(entry) = queue.pop() else {
            let empty = AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {}));
            wire::method(&mut conn.out, ch, &empty);
            return Ok(());
        };
        channel.last_tag += 1;
        let tag = channel.last_tag;
        let ok = AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: tag,
            redelivered: entry.redelivered,
            exchange: wire::short(&entry.msg.exchange),
            routing_key: wire::short(&entry.msg.routing_key),
            message_count: u32::try_from(queue.ready()).unwrap_or(u32::MAX),
        }));
        wire::method(&mut conn.out, ch, &ok);
        write_content_raw(
            &mut conn.out,
            ch,
            BASIC,
            &entry.msg.raw_properties,
            &entry.msg.body,
            conn.frame_max,
        );
        if !m.no_ack {
            queue.unacked += 1;
            channel.unacked.push_back(Unacked {
                tag,
                queue: q,
                consumer: None,
                entry,
                delivered_at: now,
            });
        }
        Ok(())
    }
}
