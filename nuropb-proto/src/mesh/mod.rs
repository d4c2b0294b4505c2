//! The NuroPb mesh protocol: a participant as a state machine over AMQP connections.
//!
//! An [`Endpoint`] is a service (it declares its queue, serves its methods, receives the events
//! it subscribes to) or a client only; either can request, command, publish events and describe.
//! It holds every protocol decision — queue names and startup sequence, the ack table,
//! call-again-once, correlation of responses, deadlines, encryption, describe, authorization
//! checks, what a reconnect redeclares and what it fails, which node to connect to and when,
//! graceful shutdown — and never waits for anything: the adapter opens the sockets it asks for
//! and runs handlers, whose [`Outcome`] comes back through [`Endpoint::complete`].
//!
//! The endpoint is made of parts that own their state, each with its own methods; the endpoint
//! routes to them and lends them what they act through (`cx`):
//!
//! - `lifecycle`: nodes, the first start, reconnects and their backoff;
//! - `session`: one connection and its channel — startup, mesh setup, publishing;
//! - `calls`: the calling side — requests, commands, events, describe, deadlines, the outbox;
//! - `serving`: the serving side — deliveries, the ack table, responses, settlements.
//!
//! And what goes in and out: [`config`] (the endpoint's role, nodes and limits), [`names`] and
//! [`topology`] (queue names, the mesh's exchanges, the startup sequence), [`management`] (the
//! vhost as HTTP calls), [`call`] and [`outcome`] (what goes to handlers, what comes back),
//! [`output`] (what the driver is asked and told), [`backoff`] (the reconnect schedule),
//! [`footprint`] (the sizes of the tables), `random` (ids and jitter from one seed).

pub mod backoff;
pub mod call;
mod calls;
pub mod config;
mod cx;
pub mod endpoint;
pub mod footprint;
mod lifecycle;
pub mod management;
pub mod names;
pub mod outcome;
pub mod output;
mod random;
mod serving;
mod session;
pub mod topology;

pub use backoff::Backoff;
pub use call::{Call, DeliveryId, IncomingEvent};
pub use calls::{OutgoingEvent, Request};
pub use config::{EndpointConfig, MeshNames, ServiceConfig};
pub use endpoint::{Endpoint, Phase};
pub use footprint::Footprint;
pub use outcome::{EventSpec, Outcome};
pub use output::{Arrival, Output, RequestId, UnreadableMessage};
pub use random::CorrelationIds;
pub use serving::CompleteError;
