//! Settling deliveries: `basic.ack`, `basic.nack`, `basic.reject` (with `multiple` and
//! `requeue`), `basic.recover`; and what a requeue or a rejection does to the message.
//!
//! A tag that is not outstanding on the channel — never delivered, already settled, or from a
//! `no_ack` consumer — closes the channel with `406 PRECONDITION_FAILED - unknown delivery tag N`.
//! With `multiple`, the named tag must be outstanding (or be 0, meaning all).

use crate::broker::channel::{Settle, Unacked};
use crate::broker::error::AmqpError;
use crate::broker::message::DeathReason;
use crate::broker::queue::QueueId;
use crate::broker::{Broker, ConnectionId, wire};
use amq_protocol::protocol::{AMQPClass, basic};

fn unknown(tag: u64) -> AmqpError {
    AmqpError::precondition_failed(format_args!("unknown delivery tag {tag}"))
}

impl Broker {
    /// Takes the deliveries an ack/nack/reject names off the channel.
    fn take_unacked(
        &mut self,
        c: ConnectionId,
        ch: u16,
        tag: u64,
        multiple: bool,
    ) -> Result<Vec<Unacked>, AmqpError> {
        let channel = self.channel_mut(c, ch)?;
        let taken: Vec<Unacked> = if multiple && tag == 0 {
            channel.unacked.drain(..).collect()
        } else {
            let at = channel.unacked_position(tag).ok_or_else(|| unknown(tag))?;
            if multiple {
                channel.unacked.drain(..=at).collect()
            } else {
                channel.unacked.remove(at).into_iter().collect()
            }
        };
        let limited = taken.iter().filter(|u| u.consumer.is_some()).count() as u32;
        channel.limited = channel.limited.saturating_sub(limited);
        if channel.global_prefetch != 0 && limited > 0 {
            // Room on the channel: any of its consumers may take more.
            let ids = channel.consumers.clone();
            let queues: Vec<QueueId> = ids
                .iter()
                .filter_map(|id| self.consumers.get(id).map(|x| x.queue))
                .collect();
            for q in queues {
                self.mark_dirty(q);
            }
        }
        Ok(taken)
    }

    pub(crate) fn basic_ack(
        &mut self,
        c: ConnectionId,
        ch: u16,
        tag: u64,
        multiple: bool,
    ) -> Result<(), AmqpError> {
        let in_tx = self.channel_mut(c, ch)?.tx.is_some();
        if !multiple && !in_tx {
            // The hot path: one tag, usually the oldest outstanding.
            let channel = self.channel_mut(c, ch)?;
            let at = channel.unacked_position(tag).ok_or_else(|| unknown(tag))?;
            let global = channel.global_prefetch != 0;
            let Some(u) = channel.unacked.remove(at) else {
                return Err(unknown(tag));
            };
            if u.consumer.is_some() {
                channel.limited = channel.limited.saturating_sub(1);
                if global {
                    let ids = channel.consumers.clone();
                    for id in ids {
                        if let Some(q) = self.consumers.get(&id).map(|x| x.queue) {
                            self.mark_dirty(q);
                        }
                    }
                }
            }
            self.settle(u, Settle::Ack);
            return Ok(());
        }
        let taken = self.take_unacked(c, ch, tag, multiple)?;
        self.settle_all(c, ch, taken, Settle::Ack)
    }

    /// Settles deliveries now, or holds them until `tx.commit` in a transaction.
    fn settle_all(
        &mut self,
        c: ConnectionId,
        ch: u16,
        taken: Vec<Unacked>,
        how: Settle,
    ) -> Result<(), AmqpError> {
        if let Some(tx) = self.channel_mut(c, ch)?.tx.as_mut() {
            tx.settles.extend(taken.into_iter().map(|u| (u, how)));
            return Ok(());
        }
        for u in taken {
            self.settle(u, how);
        }
        Ok(())
    }

    /// `basic.reject` (never `multiple`) and `basic.nack`.
    pub(crate) fn basic_reject(
        &mut self,
        c: ConnectionId,
        ch: u16,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<(), AmqpError> {
        let how = if requeue {
            Settle::Requeue
        } else {
            Settle::Reject
        };
        let taken = self.take_unacked(c, ch, tag, multiple)?;
        self.settle_all(c, ch, taken, how)
    }

    /// `basic.recover` / `recover-async`: RabbitMQ requeues every outstanding delivery of the
    /// channel and refuses `requeue=false`.
    pub(crate) fn basic_recover(
        &mut self,
        c: ConnectionId,
        ch: u16,
        requeue: bool,
        reply: bool,
    ) -> Result<(), AmqpError> {
        if !requeue {
            return Err(AmqpError::not_implemented("requeue=false"));
        }
        for u in self.take_unacked(c, ch, 0, true)? {
            self.settle(u, Settle::Requeue);
        }
        if reply {
            let ok = AMQPClass::Basic(basic::AMQPMethod::RecoverOk(basic::RecoverOk {}));
            wire::method(&mut self.conn_mut(c)?.out, ch, &ok);
        }
        Ok(())
    }

    /// Settles one delivery taken off its channel: counts go down, and the message is done,
    /// back in its queue, or dead-lettered. The queue is marked for dispatch (its consumer has
    /// room again). A delivery whose queue is gone is simply dropped.
    pub(crate) fn settle(&mut self, u: Unacked, how: Settle) {
        if let Some(consumer) = u.consumer.and_then(|id| self.consumers.get_mut(&id)) {
            consumer.unacked = consumer.unacked.saturating_sub(1);
        }
        let (max_messages, max_bytes) =
            (self.config.max_queue_messages, self.config.max_queue_bytes);
        let Some(queue) = self.queues.get_mut(&u.queue) else {
            return;
        };
        queue.unacked = queue.unacked.saturating_sub(1);
        match how {
            Settle::Ack => {}
            Settle::Requeue => {
                queue.requeue(u.entry);
                let limits = queue.limits(max_messages, max_bytes);
                for e in queue.drop_over(limits) {
                    self.kill(u.queue, e, DeathReason::Maxlen);
                }
            }
            Settle::Reject => self.kill(u.queue, u.entry, DeathReason::Rejected),
        }
        self.mark_dirty(u.queue);
    }
}
