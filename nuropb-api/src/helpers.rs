//! Python NuroPb's quick-start helpers (`create_client`, `create_service`, `configure_mesh`,
//! `MeshService`), for any runtime; the adapters wrap them with their runtime.

use crate::context::CallContext;
use crate::runtime::Runtime;
use crate::service::Service;
use crate::settings::ConnectionSettings;
use crate::{Client, Connector, IncomingEvent, management};
use futures_channel::oneshot;
use nuropb_proto::{ErrorKind, NuropbError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Runs blocking `f` on a thread of its own; usable under any runtime.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.await {
        Ok(value) => value,
        // The thread panicked: let the panic surface here.
        Err(_) => panic!("a blocking task panicked"),
    }
}

/// Connects a client-only participant to the broker at `url`.
pub async fn create_client(runtime: Arc<dyn Runtime>, url: &str) -> Result<Client, NuropbError> {
    Connector::new(runtime, ConnectionSettings::from_url(url)?)
        .client()
        .await
}

/// Serves `service` on the broker at `url`; shut it down with [`Client::shutdown`].
pub async fn create_service(
    runtime: Arc<dyn Runtime>,
    url: &str,
    service: Service,
) -> Result<Client, NuropbError> {
    Connector::new(runtime, ConnectionSettings::from_url(url)?)
        .serve(service)
        .await
}

/// Makes the mesh ready at `url`: creates the vhost through the management API when it is
/// missing, then declares the exchanges and dead-letter queue. Idempotent.
pub async fn configure_mesh(runtime: Arc<dyn Runtime>, url: &str) -> Result<(), NuropbError> {
    let settings = ConnectionSettings::from_url(url)?;
    create_vhost(&settings).await?;
    declare_mesh(runtime, &settings).await
}

/// Declares the mesh's exchanges and dead-letter queue in the (existing) vhost of `settings`,
/// through a client connected for the purpose. Idempotent.
pub async fn declare_mesh(
    runtime: Arc<dyn Runtime>,
    settings: &ConnectionSettings,
) -> Result<(), NuropbError> {
    let client = Connector::new(runtime, settings.clone()).client().await?;
    let configured = client.configure_mesh().await;
    client.shutdown(Duration::from_secs(5)).await;
    configured
}

/// Creates the vhost of `settings` through RabbitMQ's management API when it is missing; true
/// when it was created.
pub async fn create_vhost(settings: &ConnectionSettings) -> Result<bool, NuropbError> {
    let settings = settings.clone();
    blocking(move || management::create_vhost_blocking(&settings)).await
}

/// Deletes the vhost of `settings` through the management API; true when it existed.
pub async fn delete_vhost(settings: &ConnectionSettings) -> Result<bool, NuropbError> {
    let settings = settings.clone();
    blocking(move || management::delete_vhost_blocking(&settings)).await
}

/// The management API's view of `queue` in the vhost of `settings` (depth, consumers, rates),
/// or `None` when there is no such queue.
pub async fn queue_info(
    settings: &ConnectionSettings,
    queue: &str,
) -> Result<Option<serde_json::Value>, NuropbError> {
    let (settings, queue) = (settings.clone(), queue.to_owned());
    blocking(move || management::queue_blocking(&settings, &queue)).await
}

/// An event-only participant (Python's `MeshService`): a service with no methods that calls
/// `callback` for each event on its subscriptions.
pub async fn mesh_service<F, Fut>(
    runtime: Arc<dyn Runtime>,
    url: &str,
    name: &str,
    patterns: &[&str],
    callback: F,
) -> Result<Client, NuropbError>
where
    F: Fn(IncomingEvent, CallContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), NuropbError>> + Send + 'static,
{
    if patterns.is_empty() {
        return Err(NuropbError::new(
            ErrorKind::Validation,
            "a mesh service needs at least one topic pattern",
        ));
    }
    let mut service = Service::new(name).on_event(callback);
    for pattern in patterns {
        service = service.subscribe(*pattern);
    }
    create_service(runtime, url, service).await
}
