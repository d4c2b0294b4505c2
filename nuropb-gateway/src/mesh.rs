//! Every call the gateway makes on the mesh goes through here — connect, request, command,
//! publish, describe, state, shut down — so that a change in the client API is an edit of this
//! one file.

use nuropb_proto::{describe::ServiceDescription, message::Object};
use nuropb_tokio::{
    CallContext, Client, ConnectionState, Connector, IncomingEvent, NuropbError, Request,
};
use serde_json::Value;
use std::time::Duration;

/// A call to make: of a method (request or command), with its context already made by the
/// gateway.
#[derive(Debug)]
pub(crate) struct Call {
    pub(crate) service: String,
    pub(crate) method: String,
    pub(crate) params: Object,
    pub(crate) context: Object,
    pub(crate) trace_id: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) encrypted: bool,
}

impl Call {
    fn request(self) -> Request {
        let mut request = Request::new(self.service, self.method).timeout(self.timeout);
        request.params = self.params;
        request.context = self.context;
        request.trace_id = self.trace_id;
        request.encrypted = self.encrypted;
        request
    }
}

/// An event that arrived from the mesh.
pub(crate) struct MeshEvent {
    pub(crate) topic: String,
    pub(crate) event: Value,
    pub(crate) target: Value,
    pub(crate) context: Object,
    pub(crate) trace_id: Option<String>,
}

/// The gateway's participant on the mesh.
#[derive(Clone, Debug)]
pub(crate) struct Mesh {
    client: Client,
}

impl Mesh {
    /// Connects through `connector`; with `patterns`, on a queue bound to them whose events go to
    /// `on_event` (synchronously: it must not block).
    pub(crate) async fn connect(
        connector: &Connector,
        patterns: Vec<String>,
        on_event: impl Fn(MeshEvent) + Send + Sync + 'static,
    ) -> Result<Mesh, NuropbError> {
        let client = if patterns.is_empty() {
            connector.client().await?
        } else {
            connector
                .listener(patterns, move |event: IncomingEvent, _ctx: CallContext| {
                    on_event(MeshEvent {
                        topic: event.topic,
                        event: event.event,
                        target: event.target,
                        context: event.context,
                        trace_id: event.trace_id,
                    });
                    async { Ok(()) }
                })
                .await?
        };
        Ok(Mesh { client })
    }

    /// Calls a method and waits for its result.
    pub(crate) async fn request(&self, call: Call) -> Result<Value, NuropbError> {
        self.client.send(call.request()).await
    }

    /// Sends a command; its correlation id.
    pub(crate) fn command(&self, call: Call) -> Result<String, NuropbError> {
        self.client.command(call.request())
    }

    /// Publishes an event; its correlation id.
    pub(crate) fn publish(
        &self,
        topic: &str,
        event: Value,
        context: Object,
        trace_id: Option<String>,
    ) -> Result<String, NuropbError> {
        self.client
            .publish_event(topic, event, Value::Object(context), trace_id)
    }

    /// Asks `service` to describe itself (never from the client's own cache: the gateway keeps
    /// its own, which expires).
    pub(crate) async fn describe(&self, service: &str) -> Result<ServiceDescription, NuropbError> {
        self.client.describe(service, true).await
    }

    /// Whether the connection is up.
    pub(crate) fn ready(&self) -> bool {
        self.client.state() == ConnectionState::Ready
    }

    /// Closes the connection.
    pub(crate) async fn shutdown(&self) {
        self.client.shutdown(Duration::from_secs(2)).await;
    }
}
