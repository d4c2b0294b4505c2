//! Every call the container makes into NuroPb's client API, in one place: configuring the mesh,
//! serving and stopping the service, sampling queues, publishing advice.

use crate::health::{Advice, HealthSample, QueueSample};
use nuropb_api::{Client, Connector, NuropbError, Service, helpers};
use nuropb_proto::mesh::names;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Makes the service each time it is to be served (again).
pub(crate) type ServiceFactory = Arc<dyn Fn() -> Service + Send + Sync>;

/// The container's side of the mesh: how to reach it and what to serve.
#[derive(Clone)]
pub(crate) struct Mesh {
    pub(crate) connector: Connector,
    factory: ServiceFactory,
    /// The service made when the container was built, served first.
    first: Arc<Mutex<Option<Service>>>,
    pub(crate) service: String,
    pub(crate) instance_id: String,
    create_vhost: bool,
    dead_letter_queue: String,
}

impl Mesh {
    pub(crate) fn new(
        connector: Connector,
        factory: ServiceFactory,
        instance_id: String,
        create_vhost: bool,
        dead_letter_queue: String,
    ) -> Mesh {
        let first = factory();
        Mesh {
            connector,
            service: first.spec().name.clone(),
            first: Arc::new(Mutex::new(Some(first))),
            factory,
            instance_id,
            create_vhost,
            dead_letter_queue,
        }
    }

    /// Creates the vhost (when so configured) and declares the exchanges and dead-letter queue.
    pub(crate) async fn configure(&self) -> Result<(), NuropbError> {
        if self.create_vhost {
            helpers::create_vhost(self.connector.settings()).await?;
        }
        let client = self.connector.client().await?;
        let configured = client.configure_mesh().await;
        client.shutdown(Duration::from_secs(5)).await;
        configured
    }

    /// Serves the service under the container's instance id, with `prefetch` if given.
    pub(crate) async fn serve(&self, prefetch: Option<u16>) -> Result<Client, NuropbError> {
        let first = self.first.lock().ok().and_then(|mut first| first.take());
        let mut service = first
            .unwrap_or_else(|| (self.factory)())
            .instance_id(self.instance_id.clone());
        if let Some(prefetch) = prefetch {
            service = service.prefetch(prefetch);
        }
        self.connector.serve(service).await
    }

    /// Stops serving, letting running handlers finish for up to `grace`.
    pub(crate) async fn shutdown(client: &Client, grace: Duration) {
        client.shutdown(grace).await;
    }

    /// The service queue and the dead-letter queue, through the management API.
    pub(crate) async fn sample(&self) -> HealthSample {
        let settings = self.connector.settings();
        let queue = helpers::queue_info(settings, &names::service_queue(&self.service)).await;
        let dead = helpers::queue_info(settings, &self.dead_letter_queue).await;
        let mut sample = HealthSample::default();
        let mut errors = Vec::new();
        match queue {
            Ok(queue) => sample.queue = queue.as_ref().map(QueueSample::from_management),
            Err(e) => errors.push(e.description),
        }
        match dead {
            Ok(dead) => sample.dead_letters = dead.as_ref().map(QueueSample::from_management),
            Err(e) => errors.push(e.description),
        }
        if !errors.is_empty() {
            sample.error = Some(errors.join("; "));
        }
        sample
    }

    /// Publishes `advice` on `topic` through the served endpoint.
    pub(crate) fn publish_advice(
        &self,
        client: &Client,
        topic: &str,
        advice: &Advice,
    ) -> Result<String, NuropbError> {
        let event = json!({
            "service": self.service,
            "leader": self.instance_id,
            "advice": advice.advice,
            "reason": advice.reason,
            "sample": advice.sample,
        });
        client.publish_event(topic, event, json!({}), None)
    }
}
