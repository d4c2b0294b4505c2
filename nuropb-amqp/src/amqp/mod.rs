//! AMQP 0-9-1 on `amq-protocol`'s codec, without I/O.
//!
//! - [`frame`]: reading frames from arbitrarily chunked bytes, with the frame size checked against
//!   `frame_max` before a body is buffered, and writing frames, with content bodies split at `frame_max`.
//! - [`properties`]: basic-class content properties whose header table keeps its order on the wire.

pub mod frame;
pub mod properties;

pub use amq_protocol::protocol::AMQPClass;
pub use amq_protocol::types::{AMQPValue, ChannelId, FieldTable, LongString, ShortString};
pub use frame::{ContentHeader, Frame, FrameError, FrameReader};
pub use properties::{Headers, Properties};
