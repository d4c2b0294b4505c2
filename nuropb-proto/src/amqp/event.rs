//! What a [`Connection`](crate::amqp::Connection) tells its driver: [`Event`] and the types it
//! carries.

use amq_protocol::types::{ChannelId, FieldTable, ShortString};

use crate::amqp::error::ConnectionError;
use crate::amqp::properties::{Properties, PropertiesError};

/// Identifies a synchronous AMQP method (`queue.declare`, `basic.consume`, …) sent by a command,
/// until the broker's answer in its [`Event::Completed`].
///
/// Unique within one connection; ids are handed out in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SyncId(pub(crate) u64);

impl SyncId {
    /// The number behind the id.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// The limits settled by `connection.tune` / `tune-ok`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Highest usable channel number.
    pub channel_max: u16,
    /// Largest frame, framing included (0 = no limit).
    pub frame_max: u32,
    /// Heartbeat interval in seconds (0 = no heartbeats).
    pub heartbeat: u16,
}

/// A message the broker delivered to a consumer (`basic.deliver` with its content).
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The channel of the consumer.
    pub channel: ChannelId,
    /// The consumer it was delivered to.
    pub consumer_tag: ShortString,
    /// The tag to ack, nack or reject it with (on this channel).
    pub delivery_tag: u64,
    /// Whether it was delivered before and not acknowledged.
    pub redelivered: bool,
    /// The exchange it was published to.
    pub exchange: ShortString,
    /// The routing key it was published with.
    pub routing_key: ShortString,
    /// Its content properties.
    pub properties: Properties,
    /// Its body, reassembled from all body frames.
    pub body: Vec<u8>,
}

/// A `mandatory` (or `immediate`) message the broker could not route (`basic.return`).
///
/// With publisher confirms on, RabbitMQ sends the return before the confirm of the same publish.
#[derive(Clone, Debug, PartialEq)]
pub struct Returned {
    /// The channel it was published on.
    pub channel: ChannelId,
    /// Why: e.g. 312 NO_ROUTE.
    pub reply_code: u16,
    /// The broker's text, e.g. `NO_ROUTE`.
    pub reply_text: ShortString,
    /// The exchange it was published to.
    pub exchange: ShortString,
    /// The routing key it was published with.
    pub routing_key: ShortString,
    /// Its content properties.
    pub properties: Properties,
    /// Its body.
    pub body: Vec<u8>,
}

/// A message fetched with [`Connection::basic_get`](crate::amqp::Connection::basic_get).
#[derive(Clone, Debug, PartialEq)]
pub struct GetMessage {
    /// The tag to ack, nack or reject it with (unless fetched with `no_ack`).
    pub delivery_tag: u64,
    /// Whether it was delivered before and not acknowledged.
    pub redelivered: bool,
    /// The exchange it was published to.
    pub exchange: ShortString,
    /// The routing key it was published with.
    pub routing_key: ShortString,
    /// Messages left in the queue.
    pub message_count: u32,
    /// Its content properties.
    pub properties: Properties,
    /// Its body.
    pub body: Vec<u8>,
}

/// A message the broker sent whose content could not be read: the publisher's doing, not the
/// broker's, so the connection goes on. Its body was counted, not kept.
///
/// A delivery must still be settled by its tag — rejected without requeue, so that it
/// dead-letters rather than comes back.
#[derive(Clone, Debug, PartialEq)]
pub struct Unreadable {
    /// The channel it came on.
    pub channel: ChannelId,
    /// Which method brought it, with that method's fields.
    pub origin: Origin,
    /// The exchange it was published to.
    pub exchange: ShortString,
    /// The routing key it was published with.
    pub routing_key: ShortString,
    /// What could be read of its properties ([`Properties::salvage`]): enough, usually, to
    /// answer it by its reply-to and correlation id.
    pub properties: Properties,
    /// The size of its body, as its content header announced.
    pub body_size: u64,
    /// What was wrong.
    pub error: ContentError,
}

/// The method an [`Unreadable`] message came with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// `basic.deliver`, to a consumer.
    Delivery {
        /// The consumer it was delivered to.
        consumer_tag: ShortString,
        /// The tag to settle it with (on its channel).
        delivery_tag: u64,
        /// Whether it was delivered before and not acknowledged.
        redelivered: bool,
    },
    /// `basic.return`.
    Returned {
        /// Why the broker returned it, e.g. 312.
        reply_code: u16,
        /// The broker's text, e.g. `NO_ROUTE`.
        reply_text: ShortString,
    },
    /// `basic.get-ok`.
    Got {
        /// The tag to settle it with (unless fetched with `no_ack`).
        delivery_tag: u64,
        /// Whether it was delivered before and not acknowledged.
        redelivered: bool,
        /// Messages left in the queue.
        message_count: u32,
    },
}

/// Why a message's content could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// Its content properties: what [`Properties::salvage`] found first.
    #[error("unreadable content properties: {0}")]
    Properties(#[from] PropertiesError),
    /// Its body is larger than [`Config::max_body_size`](crate::amqp::Config::max_body_size).
    #[error("a body of {size} bytes, over the limit of {limit}")]
    BodyTooLarge {
        /// The announced size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// The broker's answer to a request.
#[derive(Clone, Debug, PartialEq)]
pub enum Completion {
    /// `exchange.declare-ok`.
    ExchangeDeclared,
    /// `exchange.delete-ok`.
    ExchangeDeleted,
    /// `queue.declare-ok`.
    QueueDeclared {
        /// The queue's name (chosen by the broker when declared with an empty name).
        queue: ShortString,
        /// Messages ready in it.
        message_count: u32,
        /// Consumers on it.
        consumer_count: u32,
    },
    /// `queue.bind-ok`.
    QueueBound,
    /// `queue.unbind-ok`.
    QueueUnbound,
    /// `queue.purge-ok`.
    QueuePurged {
        /// Messages removed.
        message_count: u32,
    },
    /// `queue.delete-ok`.
    QueueDeleted {
        /// Messages deleted with it.
        message_count: u32,
    },
    /// `basic.qos-ok`.
    QosSet,
    /// `basic.consume-ok`.
    ConsumeStarted {
        /// The consumer's tag (chosen by the broker when requested with an empty tag).
        consumer_tag: ShortString,
    },
    /// `basic.cancel-ok` for a cancel we sent.
    ConsumeCancelled {
        /// The consumer's tag.
        consumer_tag: ShortString,
    },
    /// `confirm.select-ok`: publishes on the channel are now confirmed.
    ConfirmSelected,
    /// `basic.get-ok` with its message.
    Got(Box<GetMessage>),
    /// `basic.get-ok` with a message whose content could not be read.
    GotUnreadable(Box<Unreadable>),
    /// `basic.get-empty`.
    GetEmpty,
}

/// A synchronous method that got no answer because its channel or the connection closed first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncFailed {
    /// The reply code of the close (e.g. 404 when the broker closed the channel for it).
    pub reply_code: u16,
    /// The text of the close.
    pub reply_text: String,
}

/// How a confirmed publish ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirm {
    /// `basic.ack`: the broker took responsibility for it.
    Ack,
    /// `basic.nack`: the broker lost it (internal error).
    Nack,
    /// The channel or connection closed before the broker confirmed it: its fate is unknown.
    Lost,
}

/// What happened on the connection. Fetch with
/// [`Connection::poll_event`](crate::amqp::Connection::poll_event).
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The handshake finished: the virtual host is open and channels can be opened.
    Connected {
        /// The settled limits.
        tuning: Tuning,
        /// The broker's `server_properties` from `connection.start`.
        server_properties: FieldTable,
    },
    /// The broker answered `channel.open`.
    ChannelOpened {
        /// The channel.
        channel: ChannelId,
    },
    /// A channel closed. Its pending requests have had their [`Event::Completed`] with an error,
    /// its unconfirmed publishes their [`Event::Confirmed`] with [`Confirm::Lost`]; the number
    /// may be reused by [`Connection::open_channel`](crate::amqp::Connection::open_channel).
    ChannelClosed {
        /// The channel.
        channel: ChannelId,
        /// The reply code of the close (e.g. 403, 404, 406 from the broker; ours otherwise).
        reply_code: u16,
        /// The text of the close.
        reply_text: String,
        /// Class id of the method that caused it (0 if none).
        class_id: u16,
        /// Method id of the method that caused it (0 if none).
        method_id: u16,
        /// Whether the broker closed it (`channel.close` or a connection close).
        by_peer: bool,
    },
    /// A synchronous method was answered, or failed because its channel closed.
    Completed {
        /// The channel it was sent on.
        channel: ChannelId,
        /// The id its command returned.
        id: SyncId,
        /// The broker's answer.
        result: Result<Completion, SyncFailed>,
    },
    /// A message for a consumer.
    Delivery(Delivery),
    /// A message for a consumer, or returned, whose content could not be read; a delivery must
    /// still be settled.
    Unreadable(Box<Unreadable>),
    /// A message the broker could not route.
    Returned(Returned),
    /// A publish on a channel in confirm mode was confirmed (or lost).
    Confirmed {
        /// The channel it was published on.
        channel: ChannelId,
        /// The sequence number [`Connection::basic_publish`](crate::amqp::Connection::basic_publish) returned.
        seq: u64,
        /// How it ended.
        outcome: Confirm,
    },
    /// The broker cancelled a consumer (e.g. its queue was deleted).
    ConsumerCancelled {
        /// The consumer's channel.
        channel: ChannelId,
        /// The consumer's tag.
        consumer_tag: ShortString,
    },
    /// The broker asks to pause (`channel.flow active=false`) or resume deliveries on a channel.
    /// The client already answered with `flow-ok`.
    Flow {
        /// The channel.
        channel: ChannelId,
        /// Whether the broker may send again.
        active: bool,
    },
    /// The broker stopped reading from this connection (`connection.blocked`, e.g. memory alarm);
    /// publishes are held up in the socket until [`Event::Unblocked`].
    Blocked {
        /// The broker's reason.
        reason: String,
    },
    /// The broker reads from this connection again.
    Unblocked,
    /// The connection is closed; flush [`Connection::poll_transmit`](crate::amqp::Connection::poll_transmit)
    /// once more and drop the socket. Always the last event.
    Closed {
        /// The reply code of the close.
        reply_code: u16,
        /// The text of the close.
        reply_text: String,
        /// Whether the broker (or the network) ended it.
        by_peer: bool,
        /// Why, unless it was the close we asked for.
        error: Option<ConnectionError>,
    },
}
