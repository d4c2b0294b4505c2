//! The queue class: `queue.declare` (server-named, passive, exclusive, equivalence), `bind`,
//! `unbind`, `purge`, `delete`; and deleting a queue with everything hanging on it.

use crate::broker::args::{QUEUE_ARGS, assert_args, assert_field, queue_args};
use crate::broker::error::{AmqpError, resource};
use crate::broker::exchange::Destination;
use crate::broker::queue::{Queue, QueueId};
use crate::broker::{Broker, ConnectionId, wire};
use amq_protocol::protocol::{AMQPClass, basic, queue};

fn reply(m: queue::AMQPMethod) -> AMQPClass {
    AMQPClass::Queue(m)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Broker {
    /// The queue a method names: `""` is the channel's last declared queue.
    pub(crate) fn queue_name(
        &mut self,
        c: ConnectionId,
        ch: u16,
        name: &str,
    ) -> Result<String, AmqpError> {
        if !name.is_empty() {
            return Ok(name.to_owned());
        }
        self.channel_mut(c, ch)?
            .last_queue
            .clone()
            .ok_or_else(|| AmqpError::not_found("no previously declared queue"))
    }

    /// The queue `name` as connection `c` may use it: `None` when there is none, 405 when it is
    /// another connection's exclusive queue.
    pub(crate) fn find_usable_queue(
        &self,
        c: ConnectionId,
        name: &str,
    ) -> Result<Option<QueueId>, AmqpError> {
        let vhost = &self.vhosts[self.vhost_of(c)?];
        let Some(&id) = vhost.queues.get(name) else {
            return Ok(None);
        };
        match self.queues.get(&id) {
            Some(q) if q.exclusive_owner.is_some_and(|o| o != c) => Err(
                AmqpError::resource_locked(&resource("queue", name, &vhost.name)),
            ),
            Some(_) => Ok(Some(id)),
            None => Ok(None),
        }
    }

    /// As [`Broker::find_usable_queue`], with 404 when there is none.
    pub(crate) fn usable_queue(&self, c: ConnectionId, name: &str) -> Result<QueueId, AmqpError> {
        let vhost = &self.vhosts[self.vhost_of(c)?].name;
        self.find_usable_queue(c, name)?.ok_or_else(|| {
            AmqpError::not_found(format_args!("no {}", resource("queue", name, vhost)))
        })
    }

    pub(crate) fn queue_declare(
        &mut self,
        c: ConnectionId,
        ch: u16,
        m: queue::Declare,
    ) -> Result<(), AmqpError> {
        let vid = self.vhost_of(c)?;
        let name = if m.passive {
            self.queue_name(c, ch, m.queue.as_str())?
        } else if m.queue.as_str().is_empty() {
            self.names.name("amq.gen-")
        } else if m.queue.as_str().starts_with("amq.") {
            return Err(AmqpError::access_refused(format_args!(
                "queue name '{}' contains reserved prefix 'amq.*'",
                m.queue.as_str()
            )));
        } else {
            m.queue.as_str().to_owned()
        };
        let vname = self.vhosts[vid].name.clone();
        let res = resource("queue", &name, &vname);
        let id = if m.passive {
            self.usable_queue(c, &name)?
        } else if let Some(&id) = self.vhosts[vid].queues.get(&name) {
            let q = self
                .queues
                .get(&id)
                .ok_or_else(|| AmqpError::internal("queue index out of step"))?;
            let owner_ok = match q.exclusive_owner {
                Some(owner) => m.exclusive && owner == c,
                None => !m.exclusive,
            };
            if !owner_ok {
                return Err(AmqpError::resource_locked(&res));
            }
            assert_field(q.durable, m.durable, &res, "durable")?;
            assert_field(q.auto_delete, m.auto_delete, &res, "auto_delete")?;
            assert_args(&q.arguments, &m.arguments, &res, &QUEUE_ARGS)?;
            id
        } else {
            let args = queue_args(&m.arguments, &res)?;
            if self.vhosts[vid].queues.len() >= self.config.max_queues {
                return Err(AmqpError::precondition_failed(format_args!(
                    "cannot declare {res}: queue limit in vhost '{vname}' ({}) is reached",
                    self.config.max_queues
                )));
            }
            let id = self.next_queue;
            self.next_queue += 1;
            let owner = m.exclusive.then_some(c);
            let q = Queue::new(
                vid,
                name.clone(),
                m.durable,
                m.auto_delete,
                owner,
                m.arguments,
                args,
            );
            self.queues.insert(id, q);
            self.vhosts[vid].queues.insert(name.clone(), id);
            if m.exclusive {
                self.conn_mut(c)?.exclusive_queues.push(id);
            }
            id
        };
        let (ready, consumers) = self
            .queues
            .get(&id)
            .map_or((0, 0), |q| (q.ready(), q.consumers.len()));
        self.channel_mut(c, ch)?.last_queue = Some(name.clone());
        self.write_reply(
            c,
            ch,
            m.nowait,
            reply(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
                queue: wire::short(&name),
                message_count: count(ready),
                consumer_count: count(consumers),
            })),
        )
    }

    pub(crate) fn queue_bind(
        &mut self,
        c: ConnectionId,
        ch: u16,
        m: queue::Bind,
    ) -> Result<(), AmqpError> {
        let vid = self.vhost_of(c)?;
        let name = self.queue_name(c, ch, m.queue.as_str())?;
        let x = m.exchange.as_str();
        if x.is_empty() {
            return Err(AmqpError::default_exchange());
        }
        self.exchange_or_404(vid, x)?;
        let q = self.usable_queue(c, &name)?;
        self.add_binding(
            vid,
            x,
            Destination::Queue(q),
            m.routing_key.as_str(),
            m.arguments,
        )?;
        self.write_reply(
            c,
            ch,
            m.nowait,
            reply(queue::AMQPMethod::BindOk(queue::BindOk {})),
        )
    }

    pub(crate) fn queue_unbind(
        &mut self,
        c: ConnectionId,
        ch: u16,
        m: queue::Unbind,
    ) -> Result<(), AmqpError> {
        let vid = self.vhost_of(c)?;
        let name = self.queue_name(c, ch, m.queue.as_str())?;
        let x = m.exchange.as_str();
        if x.is_empty() {
            return Err(AmqpError::default_exchange());
        }
        if let Some(q) = self.find_usable_queue(c, &name)? {
            self.remove_binding(
                vid,
                x,
                &Destination::Queue(q),
                m.routing_key.as_str(),
                &m.arguments,
            );
        }
        let ok = reply(queue::AMQPMethod::UnbindOk(queue::UnbindOk {}));
        wire::method(&mut self.conn_mut(c)?.out, ch, &ok);
        Ok(())
    }

    pub(crate) fn queue_purge(
        &mut self,
        c: ConnectionId,
        ch: u16,
        m: queue::Purge,
    ) -> Result<(), AmqpError> {
        let name = self.queue_name(c, ch, m.queue.as_str())?;
        let q = self.usable_queue(c, &name)?;
        let purged = self.queues.get_mut(&q).map_or(0, |q| q.purge());
        self.write_reply(
            c,
            ch,
            m.nowait,
            reply(queue::AMQPMethod::PurgeOk(queue::PurgeOk {
                message_count: count(purged),
            })),
        )
    }

    pub(crate) fn queue_delete(
        &mut self,
        c: ConnectionId,
        ch: u16,
        m: queue::Delete,
    ) -> Result<(), AmqpError> {
        let vid = self.vhost_of(c)?;
        let name = self.queue_name(c, ch, m.queue.as_str())?;
        let deleted = match self.find_usable_queue(c, &name)? {
            None => 0,
            Some(id) => {
                let res = resource("queue", &name, &self.vhosts[vid].name);
                let q = self
                    .queues
                    .get(&id)
                    .ok_or_else(|| AmqpError::internal("queue index out of step"))?;
                if m.if_unused && !q.consumers.is_empty() {
                    return Err(AmqpError::precondition_failed(format_args!("{res} in use")));
                }
                if m.if_empty && q.ready() > 0 {
                    return Err(AmqpError::precondition_failed(format_args!(
                        "{res} not empty"
                    )));
                }
                self.delete_queue(id)
            }
        };
        self.write_reply(
            c,
            ch,
            m.nowait,
            reply(queue::AMQPMethod::DeleteOk(queue::DeleteOk {
                message_count: count(deleted),
            })),
        )
    }

    /// Deletes a queue: its bindings go, its consumers are cancelled (with a `basic.cancel` to
    /// clients that announced `consumer_cancel_notify`), its ready messages are dropped, and its
    /// deliveries still unacknowledged are forgotten — acknowledging one afterwards is an unknown
    /// delivery tag, as on RabbitMQ. Returns how many ready messages it had.
    pub(crate) fn delete_queue(&mut self, id: QueueId) -> usize {
        let Some(q) = self.queues.remove(&id) else {
            return 0;
        };
        if q.unacked > 0 {
            for conn in self.connections.values_mut() {
                for channel in conn.channels.values_mut() {
                    let before = channel.unacked.len();
                    let mut limited = 0;
                    channel.unacked.retain(|u| {
                        let keep = u.queue != id;
                        if !keep && u.consumer.is_some() {
                            limited += 1;
                        }
                        keep
                    });
                    if let Some(tx) = channel.tx.as_mut() {
                        tx.settles.retain(|(u, _)| u.queue != id);
                    }
                    if channel.unacked.len() != before {
                        channel.limited = channel.limited.saturating_sub(limited);
                    }
                }
            }
        }
        let vid = q.vhost;
        if self.vhosts[vid].queues.get(&q.name) == Some(&id) {
            self.vhosts[vid].queues.remove(&q.name);
        }
        self.unbind_queue_everywhere(vid, id);
        for cid in &q.consumers {
            let Some(consumer) = self.consumers.remove(cid) else {
                continue;
            };
            let Some(conn) = self.connections.get_mut(&consumer.conn) else {
                continue;
            };
            let notify = conn.cancel_notify;
            if let Some(channel) = conn.channels.get_mut(&consumer.channel) {
                channel.consumers.retain(|x| x != cid);
                if notify && !channel.closing {
                    let cancel = AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                        consumer_tag: wire::short(&consumer.tag),
                        nowait: true,
                    }));
                    wire::method(&mut conn.out, consumer.channel, &cancel);
                }
            }
        }
        if let Some(owner) = q.exclusive_owner
            && let Some(conn) = self.connections.get_mut(&owner)
        {
            conn.exclusive_queues.retain(|x| *x != id);
        }
        q.ready()
    }
}
