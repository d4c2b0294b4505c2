//! The sans-IO core of NuroPb.
//!
//! NuroPb is a service mesh over RabbitMQ: services expose methods, any participant can call them
//! (request/response), send commands, publish events on topics and ask a service to describe
//! itself. This crate holds every protocol decision and does no I/O: no sockets, no clocks, no
//! threads. Bytes and time go in; bytes, events and timeouts come out. Runtime adapters
//! (`nuropb-tokio`, `nuropb-async-std`) only move bytes and run handlers.
//!
//! - [`message`]: the transport message and its payloads, the AMQP mapping both ways, and a JSON
//!   codec whose bodies are byte-identical to Python NuroPb 0.1.8's.
//! - [`error`]: [`NuropbError`], whose kinds carry the Python exception class names.
//! - [`crypto`]: RSA-OAEP-wrapped Fernet keys, one per correlation id, in a bounded store.
//! - [`describe`]: service descriptions, and how a Rust service declares its methods.
//! - [`amqp`]: the AMQP 0-9-1 client connection: a state machine over `amq-protocol`'s codec.
#![forbid(unsafe_code)]

pub mod amqp;
pub mod crypto;
pub mod describe;
pub mod error;
pub mod mesh;
pub mod message;

pub use error::{ErrorKind, NuropbError};
