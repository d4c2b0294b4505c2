//! The NuroPb mesh protocol: a participant as a state machine over an AMQP connection.
//!
//! An [`Endpoint`] is a service (it declares its queue, serves its methods, receives the events
//! it subscribes to) or a client only; either can request, command, publish events and describe.
//! It holds every protocol decision — queue names and startup sequence, the ack table,
//! call-again-once, correlation of responses, deadlines, encryption, describe, authorization
//! checks, what a reconnect redeclares and what it fails — and never waits for anything: handlers
//! run outside, in the runtime adapter, and their [`Outcome`] comes back through
//! [`Endpoint::complete`].
//!
//! - [`config`]: the endpoint's role and limits; [`names`] and [`topology`]: queue names, the
//!   mesh's exchanges and the startup sequence; [`management`]: the vhost as HTTP calls.
//! - [`client`]: requests, commands, events, describe; [`service`]: deliveries and the ack table.
//! - [`call`], [`outcome`], [`event`]: what goes to handlers, what comes back, what the driver sees.
//! - [`backoff`]: the reconnect schedule; [`footprint`]: the sizes of the endpoint's tables.

pub mod backoff;
pub mod call;
pub mod client;
pub mod config;
pub mod endpoint;
pub mod event;
pub mod footprint;
pub(crate) mod ids;
pub mod management;
pub mod names;
pub mod outcome;
pub mod service;
pub mod topology;

pub use backoff::Backoff;
pub use call::{Call, DeliveryId, IncomingEvent};
pub use client::{OutgoingEvent, Request};
pub use config::{EndpointConfig, MeshNames, ServiceConfig};
pub use endpoint::{Endpoint, Phase};
pub use event::{Arrival, Event, RequestId, UnreadableMessage};
pub use footprint::Footprint;
pub use outcome::{EventSpec, Outcome};
pub use service::CompleteError;
