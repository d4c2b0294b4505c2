//! Arguments of the commands a [`Connection`] sends, and the commands themselves.
//!
//! Names are plain `String`s; each command checks that they fit an AMQP short string (255 bytes)
//! and refuses with [`Error::ShortStringTooLong`] instead of panicking. Build them with `new` and
//! struct update syntax:
//!
//! ```
//! use nuropb_proto::amqp::QueueDeclare;
//!
//! let declare = QueueDeclare { durable: true, ..QueueDeclare::new("nuropb-research-svc-sq") };
//! assert!(!declare.exclusive);
//! ```

use amq_protocol::protocol::{AMQPClass, basic, channel, confirm, exchange, queue};
use amq_protocol::types::{ChannelId, FieldTable};

use crate::amqp::channel::{Channel, ChannelState, Expect};
use crate::amqp::config::short;
use crate::amqp::connection::{Connection, Inner, State};
use crate::amqp::error::Error;
use crate::amqp::event::SyncId;
use crate::amqp::frame::{write_content, write_content_raw, write_method};
use crate::amqp::properties::Properties;
use crate::amqp::wire;

/// `exchange.declare`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExchangeDeclare {
    /// Exchange name.
    pub exchange: String,
    /// Exchange type: `direct`, `topic`, `fanout`, `headers`.
    pub kind: String,
    /// Only check that it exists (404 otherwise).
    pub passive: bool,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Cannot be published to directly.
    pub internal: bool,
    /// Ask for no `declare-ok`; no [`Event::Completed`](crate::amqp::Event::Completed) follows.
    pub no_wait: bool,
    /// Extra arguments.
    pub arguments: FieldTable,
}

impl ExchangeDeclare {
    /// An exchange of the given name and type, other fields at their defaults.
    pub fn new(exchange: impl Into<String>, kind: impl Into<String>) -> Self {
        ExchangeDeclare {
            exchange: exchange.into(),
            kind: kind.into(),
            ..Default::default()
        }
    }

    pub(crate) fn method(&self) -> Result<AMQPClass, Error> {
        Ok(AMQPClass::Exchange(exchange::AMQPMethod::Declare(
            exchange::Declare {
                exchange: short("exchange", &self.exchange)?,
                kind: short("exchange type", &self.kind)?,
                passive: self.passive,
                durable: self.durable,
                auto_delete: self.auto_delete,
                internal: self.internal,
                nowait: self.no_wait,
                arguments: self.arguments.clone(),
            },
        )))
    }
}

/// `exchange.delete`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExchangeDelete {
    /// Exchange name.
    pub exchange: String,
    /// Only if it has no bindings.
    pub if_unused: bool,
    /// Ask for no `delete-ok`.
    pub no_wait: bool,
}

impl ExchangeDelete {
    /// Deletes the named exchange.
    pub fn new(exchange: impl Into<String>) -> Self {
        ExchangeDelete {
            exchange: exchange.into(),
            ..Default::default()
        }
    }

    pub(crate) fn method(&self) -> Result<AMQPClass, Error> {
        Ok(AMQPClass::Exchange(exchange::AMQPMethod::Delete(
            exchange::Delete {
                exchange: short("exchange", &self.exchange)?,
                if_unused: self.if_unused,
                nowait: self.no_wait,
            },
        )))
    }
}

/// `queue.declare`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueDeclare {
    /// Queue name; empty lets the broker choose one (returned in
    /// [`Completion::QueueDeclared`](crate::amqp::Completion::QueueDeclared)).
    pub queue: String,
    /// Only check that it exists (404 otherwise).
    pub passive: bool,
    /// Survives a broker restart.
    pub durable: bool,
    /// Used only by this connection, deleted when it closes.
    pub exclusive: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Ask for no `declare-ok` (needs a name).
    pub no_wait: bool,
    /// Extra arguments (`x-dead-letter-exchange`, `x-message-ttl`, …).
    pub arguments: FieldTable,
}

impl QueueDeclare {
    /// A queue of the given name, other fields at their defaults.
    pub fn new(queue: impl Into<String>) -> Self {
        QueueDeclare {
            queue: queue.into(),
            ..Default::default()
        }
    }

    pub(crate) fn method(&self) -> Result<AMQPClass, Error> {
        if self.no_wait && self.queue.is_empty() {
            return Err(Error::NoWaitNeedsName("queue"));
        }
        Ok(AMQPClass::Queue(queue::AMQPMethod::Declare(
            queue::Declare {
                queue: short("queue", &self.queue)?,
                passive: self.passive,
                durable: self.durable,
                exclusive: self.exclusive,
                auto_delete: self.auto_delete,
                nowait: self.no_wait,
                arguments: self.arguments.clone(),
            },
        )))
    }
}

/// `queue.bind`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueBind {
    /// Queue name.
    pub queue: String,
    /// Exchange name.
    pub exchange: String,
    /// Binding key.
    pub routing_key: String,
    /// Ask for no `bind-ok` (Python NuroPb binds this way).
    pub no_wait: bool,
    /// Extra arguments.
    pub arguments: FieldTable,
}

impl QueueBind {
    /// Binds `queue` to `exchange` with `routing_key`.
    pub fn new(
        queue: impl Into<String>,
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
    ) -> Self {
        QueueBind {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            ..Default::default()
        }
    }

    pub(crate) fn method(&self) -> Result<AMQPClass, Error> {
        Ok(AMQPClass::Queue(queue::AMQPMethod::Bind(queue::Bind {
            queue: short("queue", &self.queue)?,
            exchange: short("exchange", &self.exchange)?,
            routing_key: short("routing key", &self.routing_key)?,
            nowait: self.no_wait,
            arguments: self.arguments.clone(),
        })))
    }
}

/// `queue.unbind` (AMQP has no `no_wait` for it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueUnbind {
    /// Queue name.
    pub queue: String,
    /// Exchange name.
    pub exchange: String,
    /// Binding key.
    pub routing_key: String,
    /// Extra arguments (as bound).
    pub arguments: FieldTable,
}

impl QueueUnbind {
    /// Unbinds `queue` from `exchange` for `routing_key`.
    pub fn new(
        queue: impl Into<String>,
        exchange: impl Into<String>,
        routing_key: impl Into<String>,
    ) -> Self {
        QueueUnbind {
            queue: queue.into(),
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            ..Default::default()
        }
    }

    pub(crate) fn method(&self) -> Result<AMQPClass, Error> {
        Ok(AMQPClass::Queue(queue::AMQPMethod::Unbind(queue::Unbind {
            queue: short("queue", &self.queue)?,
            exchange: short("exchange", &self.exchange)?,
            routing_key: short("routing key", &self.routing_key)?,
            arguments: self.arguments.clone(),
        })))
    }
}

/// `queue.purge`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuePurge {
    /// Queue name.
    pub queue: String,
    /// Ask for no `purge-ok`.
    pub no_wait: bool,
}

impl QueuePurge {
    /// Purges the named queue.
    pub fn new(queue: impl Into<String>) -> Self {
        QueuePurge {
            queue: queue.into(),
            no_wait: false,
        }
    }

    pub(crate) fn method(&self) -> Result<AMQPClass, Error> {
        Ok(AMQPClass::Queue(queue::AMQPMethod::Purge(queue::Purge {
            queue: short("queue", &self.queue)?,
            nowait: self.no_wait,
        })))
    }
}

/// `queue.delete`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueDelete {
    /// Queue name.
    pub queue: String,
    /// Only if it has no consumers.
    pub if_unused: bool,
    /// Only if it has no messages.
    pub if_empty: bool,
    /// Ask for no `delete-ok`.
    pub no_wait: bool,
}

impl QueueDelete {
    /// Deletes the named queue.
    pub fn new(queue: impl Into<String>) -> Self {
        QueueDelete {
            queue: queue.into(),
            ..Default::default()
        }
    }

    pub(crate) fn method(&self) -> Result<AMQPClass, Error> {
        Ok(AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: short("queue", &self.queue)?,
            if_unused: self.if_unused,
            if_empty: self.if_empty,
            nowait: self.no_wait,
        })))
    }
}

/// `basic.consume`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Consume {
    /// Queue to consume from.
    pub queue: String,
    /// Consumer tag; empty lets the broker choose one (returned in
    /// [`Completion::ConsumeStarted`](crate::amqp::Completion::ConsumeStarted)).
    pub consumer_tag: String,
    /// Do not deliver messages published on this connection.
    pub no_local: bool,
    /// Deliveries need no ack (auto-ack).
    pub no_ack: bool,
    /// The only consumer of the queue (403 ACCESS_REFUSED if there is another).
    pub exclusive: bool,
    /// Ask for no `consume-ok` (needs a consumer tag).
    pub no_wait: bool,
    /// Extra arguments.
    pub arguments: FieldTable,
}

impl Consume {
    /// Consumes from `queue` with a broker-chosen tag and manual acks.
    pub fn new(queue: impl Into<String>) -> Self {
        Consume {
            queue: queue.into(),
            ..Default::default()
        }
    }

    pub(crate) fn method(&self) -> Result<AMQPClass, Error> {
        if self.no_wait && self.consumer_tag.is_empty() {
            return Err(Error::NoWaitNeedsName("consumer tag"));
        }
        Ok(AMQPClass::Basic(basic::AMQPMethod::Consume(
            basic::Consume {
                queue: short("queue", &self.queue)?,
                consumer_tag: short("consumer tag", &self.consumer_tag)?,
                no_local: self.no_local,
                no_ack: self.no_ack,
                exclusive: self.exclusive,
                nowait: self.no_wait,
                arguments: self.arguments.clone(),
            },
        )))
    }
}

/// `basic.publish`, borrowed: publishing allocates nothing but the output bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Publish<'a> {
    /// Exchange to publish to (`""` is the default exchange).
    pub exchange: &'a str,
    /// Routing key.
    pub routing_key: &'a str,
    /// Return it with `basic.return` if no queue takes it.
    pub mandatory: bool,
    /// Return it if no consumer can take it now (RabbitMQ refuses this with 540).
    pub immediate: bool,
}

impl<'a> Publish<'a> {
    /// A publish to `exchange` with `routing_key`, neither mandatory nor immediate.
    pub fn new(exchange: &'a str, routing_key: &'a str) -> Self {
        Publish {
            exchange,
            routing_key,
            mandatory: false,
            immediate: false,
        }
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        for (field, value) in [
            ("exchange", self.exchange),
            ("routing key", self.routing_key),
        ] {
            if value.len() > 255 {
                return Err(Error::ShortStringTooLong {
                    field,
                    len: value.len(),
                });
            }
        }
        Ok(())
    }
}

impl Inner {
    /// The channel a command goes to, if commands may go there now.
    fn usable(&mut self, ch: ChannelId) -> Result<&mut Channel, Error> {
        match self.state {
            State::Open => {}
            State::Handshake(_) => return Err(Error::NotConnected),
            State::Closing { .. } | State::Closed => return Err(Error::Closed),
        }
        let channel = self.channel_mut(ch).ok_or(Error::ChannelNotOpen(ch))?;
        match channel.state {
            ChannelState::Closing { .. } => Err(Error::ChannelClosing(ch)),
            ChannelState::AwaitCloseOk => Err(Error::ChannelNotOpen(ch)),
            ChannelState::Opening | ChannelState::Open => Ok(channel),
        }
    }

    /// Sends a synchronous method; its reply will complete the returned request, unless
    /// `expect` is `None` (`no_wait`).
    fn request(
        &mut self,
        ch: ChannelId,
        method: Result<AMQPClass, Error>,
        expect: Option<Expect>,
    ) -> Result<SyncId, Error> {
        self.usable(ch)?;
        let method = method?;
        let request = self.next_request();
        if let (Some(expect), Some(channel)) = (expect, self.channel_mut(ch)) {
            channel.await_reply(request, expect);
        }
        write_method(&mut self.out, ch, &method);
        Ok(request)
    }
}

/// `Some(expect)` unless `no_wait`.
fn wait(no_wait: bool, expect: Expect) -> Option<Expect> {
    (!no_wait).then_some(expect)
}

/// Channel and method commands. Each checks its arguments and the state first and sends nothing
/// when it returns an error; a request's answer arrives as
/// [`Event::Completed`](crate::amqp::Event::Completed) with the returned [`SyncId`].
///
/// Commands may follow [`Connection::open_channel`] at once: the broker handles a channel's
/// methods in order, so they need not wait for [`Event::ChannelOpened`](crate::amqp::Event::ChannelOpened).
impl Connection {
    /// Opens the lowest free channel number; [`Event::ChannelOpened`](crate::amqp::Event::ChannelOpened)
    /// follows.
    pub fn open_channel(&mut self) -> Result<ChannelId, Error> {
        let inner = &mut self.inner;
        match inner.state {
            State::Open => {}
            State::Handshake(_) => return Err(Error::NotConnected),
            State::Closing { .. } | State::Closed => return Err(Error::Closed),
        }
        let max = inner.tuning.channel_max;
        let id = (1..=max)
            .find(|&id| inner.channel(id).is_none())
            .ok_or(Error::NoFreeChannel(max))?;
        let at = id as usize;
        if inner.channels.len() <= at {
            inner.channels.resize_with(at + 1, || None);
        }
        inner.channels[at] = Some(Channel::new());
        write_method(
            &mut inner.out,
            id,
            &AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {})),
        );
        Ok(id)
    }

    /// Closes a channel; [`Event::ChannelClosed`](crate::amqp::Event::ChannelClosed) with
    /// `by_peer: false` follows the broker's `close-ok`. Deliveries and replies arriving meanwhile
    /// are discarded; pending requests fail, unconfirmed publishes are lost.
    pub fn close_channel(
        &mut self,
        ch: ChannelId,
        reply_code: u16,
        reply_text: &str,
    ) -> Result<(), Error> {
        let text = short("reply text", reply_text)?;
        let channel = self.inner.usable(ch)?;
        channel.state = ChannelState::Closing {
            reply_code,
            reply_text: reply_text.to_owned(),
        };
        channel.incoming = None;
        write_method(
            &mut self.inner.out,
            ch,
            &AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
                reply_code,
                reply_text: text,
                class_id: 0,
                method_id: 0,
            })),
        );
        Ok(())
    }

    /// `exchange.declare`; completes with [`Completion::ExchangeDeclared`](crate::amqp::Completion::ExchangeDeclared).
    pub fn exchange_declare(
        &mut self,
        ch: ChannelId,
        args: &ExchangeDeclare,
    ) -> Result<SyncId, Error> {
        let expect = wait(args.no_wait, Expect::ExchangeDeclareOk);
        self.inner.request(ch, args.method(), expect)
    }

    /// `exchange.delete`; completes with [`Completion::ExchangeDeleted`](crate::amqp::Completion::ExchangeDeleted).
    pub fn exchange_delete(
        &mut self,
        ch: ChannelId,
        args: &ExchangeDelete,
    ) -> Result<SyncId, Error> {
        let expect = wait(args.no_wait, Expect::ExchangeDeleteOk);
        self.inner.request(ch, args.method(), expect)
    }

    /// `queue.declare`; completes with [`Completion::QueueDeclared`](crate::amqp::Completion::QueueDeclared),
    /// which carries the name the broker chose for an empty one.
    pub fn queue_declare(&mut self, ch: ChannelId, args: &QueueDeclare) -> Result<SyncId, Error> {
        let expect = wait(args.no_wait, Expect::QueueDeclareOk);
        self.inner.request(ch, args.method(), expect)
    }

    /// `queue.bind`; completes with [`Completion::QueueBound`](crate::amqp::Completion::QueueBound)
    /// unless `no_wait`.
    pub fn queue_bind(&mut self, ch: ChannelId, args: &QueueBind) -> Result<SyncId, Error> {
        let expect = wait(args.no_wait, Expect::QueueBindOk);
        self.inner.request(ch, args.method(), expect)
    }

    /// `queue.unbind`; completes with [`Completion::QueueUnbound`](crate::amqp::Completion::QueueUnbound).
    pub fn queue_unbind(&mut self, ch: ChannelId, args: &QueueUnbind) -> Result<SyncId, Error> {
        self.inner
            .request(ch, args.method(), Some(Expect::QueueUnbindOk))
    }

    /// `queue.purge`; completes with [`Completion::QueuePurged`](crate::amqp::Completion::QueuePurged).
    pub fn queue_purge(&mut self, ch: ChannelId, args: &QueuePurge) -> Result<SyncId, Error> {
        let expect = wait(args.no_wait, Expect::QueuePurgeOk);
        self.inner.request(ch, args.method(), expect)
    }

    /// `queue.delete`; completes with [`Completion::QueueDeleted`](crate::amqp::Completion::QueueDeleted).
    pub fn queue_delete(&mut self, ch: ChannelId, args: &QueueDelete) -> Result<SyncId, Error> {
        let expect = wait(args.no_wait, Expect::QueueDeleteOk);
        self.inner.request(ch, args.method(), expect)
    }

    /// `basic.qos` (prefetch size 0, as RabbitMQ requires); completes with
    /// [`Completion::QosSet`](crate::amqp::Completion::QosSet).
    pub fn basic_qos(
        &mut self,
        ch: ChannelId,
        prefetch_count: u16,
        global: bool,
    ) -> Result<SyncId, Error> {
        let method = AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
            prefetch_count,
            global,
        }));
        self.inner.request(ch, Ok(method), Some(Expect::QosOk))
    }

    /// `basic.consume`; completes with [`Completion::ConsumeStarted`](crate::amqp::Completion::ConsumeStarted)
    /// carrying the consumer tag; deliveries follow as [`Event::Delivery`](crate::amqp::Event::Delivery).
    pub fn basic_consume(&mut self, ch: ChannelId, args: &Consume) -> Result<SyncId, Error> {
        let expect = wait(args.no_wait, Expect::ConsumeOk);
        self.inner.request(ch, args.method(), expect)
    }

    /// `basic.cancel`; completes with [`Completion::ConsumeCancelled`](crate::amqp::Completion::ConsumeCancelled).
    /// Deliveries sent before the broker saw it may still arrive.
    pub fn basic_cancel(
        &mut self,
        ch: ChannelId,
        consumer_tag: &str,
        no_wait: bool,
    ) -> Result<SyncId, Error> {
        let method = short("consumer tag", consumer_tag).map(|consumer_tag| {
            AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                consumer_tag,
                nowait: no_wait,
            }))
        });
        self.inner
            .request(ch, method, wait(no_wait, Expect::CancelOk))
    }

    /// `basic.get`; completes with [`Completion::Got`](crate::amqp::Completion::Got) or
    /// [`Completion::GetEmpty`](crate::amqp::Completion::GetEmpty).
    pub fn basic_get(&mut self, ch: ChannelId, queue: &str, no_ack: bool) -> Result<SyncId, Error> {
        let method = short("queue", queue)
            .map(|queue| AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get { queue, no_ack })));
        self.inner.request(ch, method, Some(Expect::Get))
    }

    /// `confirm.select`: from now on every publish on the channel gets a sequence number and an
    /// [`Event::Confirmed`](crate::amqp::Event::Confirmed). Completes with
    /// [`Completion::ConfirmSelected`](crate::amqp::Completion::ConfirmSelected) unless `no_wait`.
    pub fn confirm_select(&mut self, ch: ChannelId, no_wait: bool) -> Result<SyncId, Error> {
        let method = AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: no_wait,
        }));
        let request = self
            .inner
            .request(ch, Ok(method), wait(no_wait, Expect::SelectOk))?;
        if let Some(channel) = self.inner.channel_mut(ch) {
            channel
                .confirms
                .get_or_insert_with(crate::amqp::confirm::Confirms::new);
        }
        Ok(request)
    }

    /// `basic.publish` with its content: the method frame, a content header with `properties`,
    /// and `body` split into frames of the negotiated `frame_max`.
    ///
    /// Returns the publish's sequence number when the channel is in confirm mode (see
    /// [`Connection::confirm_select`]), `None` otherwise. An unroutable `mandatory` message comes
    /// back as [`Event::Returned`](crate::amqp::Event::Returned).
    pub fn basic_publish(
        &mut self,
        ch: ChannelId,
        publish: &Publish<'_>,
        properties: &Properties,
        body: &[u8],
    ) -> Result<Option<u64>, Error> {
        self.publish_with(ch, publish, |out, frame_max| {
            write_content(out, ch, wire::BASIC, properties, body, frame_max)
        })
    }

    /// As [`Connection::basic_publish`], with the properties already encoded (as
    /// [`Properties::encode`] or [`crate::amqp::PropertiesRef::encode`] write them).
    pub fn basic_publish_raw(
        &mut self,
        ch: ChannelId,
        publish: &Publish<'_>,
        properties: &[u8],
        body: &[u8],
    ) -> Result<Option<u64>, Error> {
        self.publish_with(ch, publish, |out, frame_max| {
            write_content_raw(out, ch, wire::BASIC, properties, body, frame_max)
        })
    }

    fn publish_with(
        &mut self,
        ch: ChannelId,
        publish: &Publish<'_>,
        content: impl FnOnce(&mut Vec<u8>, u32),
    ) -> Result<Option<u64>, Error> {
        publish.check()?;
        let frame_max = match self.inner.tuning.frame_max {
            0 => u32::MAX,
            n => n,
        };
        let inner = &mut self.inner;
        let channel = inner.usable(ch)?;
        let seq = channel.confirms.as_mut().map(|c| c.publish());
        let out = &mut inner.out;
        wire::write_publish(
            out,
            ch,
            publish.exchange,
            publish.routing_key,
            publish.mandatory,
            publish.immediate,
        );
        content(out, frame_max);
        Ok(seq)
    }

    /// `basic.ack`: acknowledges delivery `delivery_tag` (and all before it when `multiple`;
    /// tag 0 with `multiple` acknowledges everything outstanding).
    pub fn basic_ack(
        &mut self,
        ch: ChannelId,
        delivery_tag: u64,
        multiple: bool,
    ) -> Result<(), Error> {
        self.inner.usable(ch)?;
        wire::write_ack(&mut self.inner.out, ch, delivery_tag, multiple);
        Ok(())
    }

    /// `basic.nack`: rejects delivery `delivery_tag` (and all before it when `multiple`),
    /// requeueing or dropping / dead-lettering it.
    pub fn basic_nack(
        &mut self,
        ch: ChannelId,
        delivery_tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<(), Error> {
        self.inner.usable(ch)?;
        wire::write_nack(&mut self.inner.out, ch, delivery_tag, multiple, requeue);
        Ok(())
    }

    /// `basic.reject`: rejects one delivery, requeueing or dropping / dead-lettering it.
    pub fn basic_reject(
        &mut self,
        ch: ChannelId,
        delivery_tag: u64,
        requeue: bool,
    ) -> Result<(), Error> {
        self.inner.usable(ch)?;
        wire::write_reject(&mut self.inner.out, ch, delivery_tag, requeue);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_typed_errors() {
        let long = "q".repeat(256);
        let err = |field, len| Err(Error::ShortStringTooLong { field, len });
        assert_eq!(QueueDeclare::new(&long).method(), err("queue", 256));
        assert_eq!(
            QueueBind::new("q", "x", &long).method(),
            err("routing key", 256)
        );
        assert_eq!(
            ExchangeDeclare::new("x", &long).method(),
            err("exchange type", 256)
        );
        let too_long = |field, len| Err(Error::ShortStringTooLong { field, len });
        assert_eq!(
            Publish::new("", &long).check(),
            too_long("routing key", 256)
        );
        assert_eq!(Publish::new(&long, "").check(), too_long("exchange", 256));
        let consume = Consume {
            consumer_tag: long.clone(),
            ..Consume::new("q")
        };
        assert_eq!(consume.method(), err("consumer tag", 256));
    }

    #[test]
    fn no_wait_needs_a_name() {
        let declare = QueueDeclare {
            no_wait: true,
            ..QueueDeclare::new("")
        };
        assert_eq!(declare.method(), Err(Error::NoWaitNeedsName("queue")));
        let consume = Consume {
            no_wait: true,
            ..Consume::new("q")
        };
        assert_eq!(
            consume.method(),
            Err(Error::NoWaitNeedsName("consumer tag"))
        );
    }
}
