//! The handle to a running endpoint: request, command, publish, describe, shut down.

use crate::backlog::Backlog;
use crate::driver::Order;
use crate::state::{ConnectionState, SharedState};
use futures_channel::{mpsc, oneshot};
use nuropb_proto::describe::ServiceDescription;
use nuropb_proto::mesh::{CorrelationIds, OutgoingEvent, Request};
use nuropb_proto::{ErrorKind, NuropbError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// A handle to a connected endpoint; cheap to clone, usable from any task.
///
/// The endpoint keeps running (and reconnecting) while a handle exists, and for a service until
/// [`Client::shutdown`].
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) commands: mpsc::UnboundedSender<Order>,
    pub(crate) backlog: Arc<Backlog>,
    pub(crate) state: Arc<SharedState>,
    /// The endpoint's own correlation ids: one generator for the participant.
    pub(crate) ids: Arc<CorrelationIds>,
    pub(crate) name: String,
    pub(crate) instance_id: String,
}

/// Refuses what AMQP cannot carry as a short string, before it is queued.
fn check_short(what: &str, value: &str) -> Result<(), NuropbError> {
    if value.len() > 255 {
        return Err(NuropbError::new(
            ErrorKind::Message,
            format!(
                "the {what} is {} bytes long; AMQP allows at most 255",
                value.len()
            ),
        ));
    }
    Ok(())
}

fn stopped() -> NuropbError {
    NuropbError::new(ErrorKind::Transport, "the endpoint has stopped")
}

impl Client {
    /// The participant's name: the service name, or `{vhost}-client`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The participant's instance id.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Where the participant's connection stands: for health checks and readiness probes.
    pub fn state(&self) -> ConnectionState {
        self.state.get()
    }

    /// How many messages arrived that could not be read (bad properties, a body over the
    /// limit, bad JSON, undecryptable…): each was rejected once (on a service queue, answered
    /// with a `NuropbMessageError` where it could be) or dropped, and logged at `warn`.
    pub fn unreadable_messages(&self) -> u64 {
        self.state.unreadable()
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, NuropbError>>) -> Order,
    ) -> Result<T, NuropbError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .unbounded_send(make(reply))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Calls `method` on `service` with `params` and waits for the result.
    ///
    /// The error is the service's (with its Python class name as kind), or the endpoint's:
    /// `NuropbTimeoutError` after the default timeout, `NuropbNotDeliveredError` when no service
    /// is bound, `NuropbTransportError` when the connection was lost with the request in flight.
    pub async fn request(
        &self,
        service: &str,
        method: &str,
        params: impl Serialize,
    ) -> Result<Value, NuropbError> {
        let params = serde_json::to_value(params)
            .map_err(|e| NuropbError::new(ErrorKind::Message, e.to_string()))?;
        self.send(Request::new(service, method).params(params))
            .await
    }

    /// Sends a fully described request (context, trace id, timeout, ttl, encryption).
    pub async fn send(&self, request: Request) -> Result<Value, NuropbError> {
        self.ask(|reply| Order::Request(request, reply)).await
    }

    /// As [`Client::send`], reading the result as `R`.
    pub async fn call<R: DeserializeOwned>(&self, request: Request) -> Result<R, NuropbError> {
        let value = self.send(request).await?;
        nuropb_proto::message::json::from_value(value)
            .map_err(|e| NuropbError::new(ErrorKind::Message, format!("unexpected result: {e}")))
    }

    /// Sends a command (no response) and returns its correlation id at once, as Python's
    /// `command` does: it goes out with the next write (or when the endpoint reconnects, within
    /// the request's timeout). An unroutable command is logged as not delivered. Refused with a
    /// `NuropbTransportError` while the [`SendLimits`](crate::SendLimits) are reached.
    pub fn command(&self, mut request: Request) -> Result<String, NuropbError> {
        check_short("service", &request.service)?;
        let correlation_id = request
            .correlation_id
            .clone()
            .unwrap_or_else(|| self.ids.next_id());
        request.correlation_id = Some(correlation_id.clone());
        self.queue(Order::Send(request))?;
        Ok(correlation_id)
    }

    /// Queues a command or an event for the driver, within the [`SendLimits`](crate::SendLimits).
    fn queue(&self, order: Order) -> Result<(), NuropbError> {
        self.backlog.admit()?;
        self.commands.unbounded_send(order).map_err(|_| {
            self.backlog.release(1);
            stopped()
        })
    }

    /// How many messages wait to be sent (commands and events queued, and anything waiting for
    /// the connection while it is down), and how many bytes the connection has still to write:
    /// what [`Client::command`] and [`Client::publish_event`] are refused past (see
    /// [`Client::send_limits`]). A publisher that would rather wait than be refused can pace
    /// itself on [`Unsent::reaches`](crate::Unsent::reaches).
    pub fn unsent(&self) -> crate::Unsent {
        self.backlog.levels()
    }

    /// The limits this participant's commands and events are refused past.
    pub fn send_limits(&self) -> crate::SendLimits {
        self.backlog.limits()
    }

    /// Publishes `event` on `topic` and returns its correlation id at once, as Python's
    /// `publish_event` does. Refused with a `NuropbTransportError` while the
    /// [`SendLimits`](crate::SendLimits) are reached.
    pub fn publish_event(
        &self,
        topic: &str,
        event: impl Serialize,
        context: Value,
        trace_id: Option<String>,
    ) -> Result<String, NuropbError> {
        check_short("topic", topic)?;
        let event = serde_json::to_value(event)
            .map_err(|e| NuropbError::new(ErrorKind::Message, e.to_string()))?;
        let correlation_id = self.ids.next_id();
        let mut outgoing = OutgoingEvent::new(topic, event)
            .context(context)
            .correlation_id(correlation_id.clone());
        outgoing.trace_id = trace_id;
        self.queue(Order::Publish(outgoing))?;
        Ok(correlation_id)
    }

    /// The description of `service`: from the endpoint's cache, or asked for (and cached) when
    /// absent or when `refresh`.
    pub async fn describe(
        &self,
        service: &str,
        refresh: bool,
    ) -> Result<ServiceDescription, NuropbError> {
        self.ask(|reply| Order::Describe(service.to_owned(), refresh, reply))
            .await
    }

    /// Whether `method` of `service` requires encryption (describing the service if needed).
    pub async fn requires_encryption(
        &self,
        service: &str,
        method: &str,
    ) -> Result<bool, NuropbError> {
        Ok(self
            .describe(service, false)
            .await?
            .requires_encryption(method))
    }

    /// Whether the public key of `service` is known (describing it if needed).
    pub async fn has_public_key(&self, service: &str) -> Result<bool, NuropbError> {
        Ok(self.describe(service, false).await?.public_key.is_some())
    }

    /// Declares the mesh's exchanges and dead-letter queue (idempotent).
    pub async fn configure_mesh(&self) -> Result<(), NuropbError> {
        self.ask(Order::ConfigureMesh).await
    }

    /// Stops taking calls, lets running handlers finish for up to `grace`, and closes the
    /// connection. Pending requests fail.
    pub async fn shutdown(&self, grace: Duration) {
        let (reply, done) = oneshot::channel();
        if self
            .commands
            .unbounded_send(Order::Shutdown(grace, reply))
            .is_ok()
        {
            let _ = done.await;
        }
    }
}
