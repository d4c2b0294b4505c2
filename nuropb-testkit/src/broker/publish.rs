//! `basic.publish`: the checks RabbitMQ makes (in its order), routing, storing in every queue
//! reached, `basic.return 312 NO_ROUTE` for an unroutable mandatory message, and the confirm.

use crate::broker::channel::PublishArgs;
use crate::broker::error::{AmqpError, reply_code, resource};
use crate::broker::message::{DeathReason, Entry, Message};
use crate::broker::props::Facts;
use crate::broker::queue::{Overflow, Pushed, QueueId};
use crate::broker::{Broker, ConnectionId, wire};
use amq_protocol::protocol::{AMQPClass, basic};
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
        wire::write_content_raw(
            &mut conn.out,
            ch,
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
