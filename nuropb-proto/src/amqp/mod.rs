//! AMQP 0-9-1 on `amq-protocol`'s codec, without I/O.
//!
//! [`Connection`] is the client state machine a runtime adapter drives: bytes in
//! ([`Connection::handle_input`]), bytes out ([`Connection::poll_transmit`]), events out
//! ([`Connection::poll_event`]), time in ([`Connection::handle_timeout`]). Its type documentation
//! gives the driving rules.
//!
//! - [`connection`]: the state machine and its handlers and polls; `inbound` handles each frame the
//!   broker sends; [`command`] holds the commands and their arguments.
//! - `handshake`, `channel`, `delivery`, `confirm`, `heartbeat`: one concern each — the connection
//!   handshake and tuning, one channel's requests, content reassembly, publisher confirms, heartbeat
//!   timing.
//! - [`config`], [`event`], [`error`]: what goes in, what comes out, what can go wrong.
//! - [`frame`]: reading frames from arbitrarily chunked bytes, with the frame size checked against
//!   `frame_max` before a body is buffered, and writing frames, with content bodies split at `frame_max`.
//! - [`properties`]: basic-class content properties whose header table keeps its order on the wire.
//! - `wire`: hand-written codecs for the hot methods (deliver in; publish, ack, nack, reject out).

pub(crate) mod channel;
pub mod command;
pub mod config;
pub(crate) mod confirm;
pub mod connection;
pub(crate) mod delivery;
pub mod error;
pub mod event;
pub mod frame;
pub(crate) mod handshake;
pub(crate) mod heartbeat;
pub(crate) mod inbound;
pub mod properties;
pub(crate) mod wire;

pub use amq_protocol::protocol::AMQPClass;
pub use amq_protocol::types::{AMQPValue, ChannelId, FieldTable, LongString, ShortString};
pub use command::{
    Consume, ExchangeDeclare, ExchangeDelete, Publish, QueueBind, QueueDeclare, QueueDelete,
    QueuePurge, QueueUnbind,
};
pub use config::Config;
pub use connection::Connection;
pub use error::{ConnectionError, Error, reply_code};
pub use event::{
    Completion, Confirm, ContentError, Delivery, Event, GetMessage, Origin, Returned, SyncFailed,
    SyncId, Tuning, Unreadable,
};
pub use frame::{ContentHeader, Frame, FrameError, FrameReader, RawFrame};
pub use properties::{Headers, HeadersRef, Properties, PropertiesError, PropertiesRef};
