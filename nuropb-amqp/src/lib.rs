//! The AMQP client moved to [`nuropb_proto::amqp`]; this crate re-exports it while code that
//! still names `nuropb_amqp` moves over.
#![forbid(unsafe_code)]

pub use nuropb_proto::amqp;
