//! `basic.publish`: the checks RabbitMQ makes (in its order), routing, storing in every queue
//! reached, `basic.return 312 NO_ROUTE` for an unroutable mandatory message, and the confirm;
//! transactions (`tx.select`, `commit`, `rollback`), which hold publishes and settlements.

use crate::broker::channel::{PublishArgs, Routed};
use crate::broker::error::{AmqpError, reply_code, resource};
use crate::broker::message::{DeathReason, Entry, Message};
use crate::broker::props::Facts;
use crate::broker::queue::{Overflow, Pushed, QueueId};
use crate::broker::wire::{self, BASIC};
use crate::broker::{Broker, ConnectionId};
use amq_protocol::protocol::{AMQPClass, basic, tx};
use nuropb_proto::amqp::frame::write_content_raw;
use std::sync::Arc;
use std::time::Instant;

impl Broker {
    pub(crate) fn publish(
        &mut self,
        c: ConnectionId,
        ch: u16,
        args: PublishArgs,
        facts: Facts,
        raw_properties: Vec<u8>,
        body: Vec<u8>,
    ) -> Result<(), AmqpError> {
        if args.immediate {
            return Err(AmqpError::not_implemented("immediate=true"));
        }
        let vid = self.vhost_of(c)?;
        let x = self.exchange_or_404(vid, &args.exchange)?;
        if x.internal {
            return Err(AmqpError::access_refused(format_args!(
                "cannot publish to internal {}",
                resource("exchange", &args.exchange, &self.vhosts[vid].name)
            )));
        }
        if let Some(user) = &facts.user_id {
            let conn = self.conn_mut(c)?;
            if *user != conn.user {
                return Err(AmqpError::precondition_failed(format_args!(
                    "user_id property set to '{user}' but authenticated user was '{}'",
                    conn.user
                )));
            }
        }
        let ttl = facts.ttl.map_err(AmqpError::precondition_failed)?;
        let persistent = facts.persistent;
        let mut queues = std::mem::take(&mut self.scratch);
        self.route(
            vid,
            &args.exchange,
            &args.routing_key,
            &raw_properties,
            &mut queues,
        );
        let seq = self.next_publish_seq(c, ch);
        let msg = Arc::new(Message {
            exchange: args.exchange,
            routing_key: args.routing_key,
            raw_properties,
            body,
            ttl,
            persistent,
        });
        let (max_messages, max_bytes) =
            (self.config.max_queue_messages, self.config.max_queue_bytes);
        if let Some(tx) = self.channel_mut(c, ch)?.tx.as_mut() {
            if tx.publishes.len() >= max_messages || tx.bytes + msg.body.len() > max_bytes {
                self.scratch = queues;
                return Err(AmqpError::precondition_failed(
                    "transaction holds more messages than a queue may",
                ));
            }
            tx.bytes += msg.body.len();
            tx.publishes.push(Routed {
                queues: queues.clone(),
                msg,
                mandatory: args.mandatory,
            });
            queues.clear();
            self.scratch = queues;
            return Ok(());
        }
        if queues.is_empty() && args.mandatory {
            self.send_return(c, ch, &msg);
        }
        let now = self
            .now
            .ok_or_else(|| AmqpError::internal("publish before any time was given"))?;
        let mut refused = false;
        for &q in &queues {
            refused |= !self.enqueue(q, Arc::clone(&msg), now);
        }
        queues.clear();
        self.scratch = queues;
        if let Some(seq) = seq {
            self.send_confirm(c, ch, seq, !refused);
        }
        Ok(())
    }

    /// `tx.commit`: stores the transaction's messages (returning unroutable mandatory ones)
    /// and applies its settlements, in order.
    pub(crate) fn tx_commit(&mut self, c: ConnectionId, ch: u16) -> Result<(), AmqpError> {
        let now = self
            .now
            .ok_or_else(|| AmqpError::internal("commit before any time was given"))?;
        let tx = self
            .channel_mut(c, ch)?
            .tx
            .as_mut()
            .ok_or_else(|| AmqpError::precondition_failed("channel is not transactional"))?;
        let publishes = std::mem::take(&mut tx.publishes);
        let settles = std::mem::take(&mut tx.settles);
        tx.bytes = 0;
        for r in publishes {
            if r.queues.is_empty() && r.mandatory {
                self.send_return(c, ch, &r.msg);
            }
            for q in r.queues {
                self.enqueue(q, Arc::clone(&r.msg), now);
            }
        }
        for (u, how) in settles {
            self.settle(u, how);
        }
        let ok = AMQPClass::Tx(tx::AMQPMethod::CommitOk(tx::CommitOk {}));
        wire::method(&mut self.conn_mut(c)?.out, ch, &ok);
        Ok(())
    }

    /// `tx.rollback`: drops the transaction's messages; its settled deliveries are outstanding
    /// again.
    pub(crate) fn tx_rollback(&mut self, c: ConnectionId, ch: u16) -> Result<(), AmqpError> {
        let channel = self.channel_mut(c, ch)?;
        let tx = channel
            .tx
            .as_mut()
            .ok_or_else(|| AmqpError::precondition_failed("channel is not transactional"))?;
        tx.publishes.clear();
        tx.bytes = 0;
        let settles = std::mem::take(&mut tx.settles);
        for (u, _) in settles {
            if u.consumer.is_some() {
                channel.limited += 1;
            }
            let at = channel.unacked.partition_point(|x| x.tag < u.tag);
            channel.unacked.insert(at, u);
        }
        let ok = AMQPClass::Tx(tx::AMQPMethod::RollbackOk(tx::RollbackOk {}));
        wire::method(&mut self.conn_mut(c)?.out, ch, &ok);
        Ok(())
    }

    /// `tx.select`.
    pub(crate) fn tx_select(&mut self, c: ConnectionId, ch: u16) -> Result<(), AmqpError> {
        let channel = self.channel_mut(c, ch)?;
        if channel.confirm_next.is_some() {
            return Err(AmqpError::precondition_failed(
                "cannot switch from confirm to tx mode",
            ));
        }
        channel.tx.get_or_insert_with(Default::default);
        let ok = AMQPClass::Tx(tx::AMQPMethod::SelectOk(tx::SelectOk {}));
        wire::method(&mut self.conn_mut(c)?.out, ch, &ok);
        Ok(())
    }

    fn send_return(&mut self, c: ConnectionId, ch: u16, msg: &Message) {
        let Ok(conn) = self.conn_mut(c) else {
            return;
        };
        let ret = AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
            reply_code: reply_code::NO_ROUTE,
            reply_text: "NO_ROUTE".into(),
            exchange: wire::short(&msg.exchange),
            routing_key: wire::short(&msg.routing_key),
        }));
        wire::method(&mut conn.out, ch, &ret);
        write_content_raw(
            &mut conn.out,
            ch,
            BASIC,
            &msg.raw_properties,
            &msg.body,
            conn.frame_max,
        );
    }

    /// Stores a routed message in queue `q`; `false` when the queue refused it (`x-overflow`
    /// `reject-publish*` at its limit). Messages dropped to make room are dead-lettered.
    pub(crate) fn enqueue(&mut self, q: QueueId, msg: Arc<Message>, now: Instant) -> bool {
        let (max_messages, max_bytes) =
            (self.config.max_queue_messages, self.config.max_queue_bytes);
        let Some(queue) = self.queues.get_mut(&q) else {
            return true;
        };
        let limits = queue.limits(max_messages, max_bytes);
        match queue.push(msg, now, limits) {
            Pushed::Accepted(dropped) => {
                for e in dropped {
                    self.kill(q, e, DeathReason::Maxlen);
                }
                self.mark_dirty(q);
                true
            }
            Pushed::Refused(msg) => {
                if queue.args.overflow == Overflow::RejectPublishDlx {
                    let entry = Entry {
                        msg,
                        seq: 0,
                        redelivered: false,
                        expires_at: None,
                    };
                    self.kill(q, entry, DeathReason::Maxlen);
                }
                false
            }
        }
    }
}
