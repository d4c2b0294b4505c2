//! An in-memory AMQP 0-9-1 broker with RabbitMQ's semantics, for testing NuroPb.
//!
//! - [`broker`]: the sans-IO broker. [`Broker`] takes bytes and time in and gives bytes and
//!   deadlines out; its type documentation tells how to drive it. It speaks what NuroPb and
//!   ordinary clients use — exchanges (direct, topic, fanout, headers, the default exchange and
//!   the `amq.*` ones), durable, exclusive and auto-delete queues, dead-lettering with `x-death`,
//!   TTL, length limits, prefetch, publisher confirms, returns — with RabbitMQ's reply codes and
//!   texts.
//! - [`fuzzing`]: one function that drives a broker with arbitrary bytes, for fuzz targets.
//! - [`sim`]: a deterministic simulation of a whole mesh — endpoints, plain clients and one
//!   broker on in-memory links, a virtual clock, a seeded generator, fault injection.
//! - [`server`]: that broker served over TCP on standard threads, embeddable in a test or an
//!   example ([`server::spawn`]); the `nuropb-broker` binary runs it from the command line.
//!
//! ```
//! use nuropb_testkit::broker::{Broker, BrokerConfig};
//! use std::time::Instant;
//!
//! let mut broker = Broker::new(BrokerConfig::default());
//! let c = broker.accept(Instant::now());
//! broker.handle_input(c, b"HTTP/1.1", Instant::now());
//! // Not AMQP: the broker answers with the protocol header it speaks and is done.
//! assert_eq!(broker.take_transmit(c).unwrap(), b"AMQP\x00\x00\x09\x01");
//! assert!(broker.is_closed(c));
//! ```
#![forbid(unsafe_code)]

pub mod broker;
pub mod fuzzing;
pub mod server;
pub mod sim;

pub use broker::{Broker, BrokerConfig, ConnectionId};
