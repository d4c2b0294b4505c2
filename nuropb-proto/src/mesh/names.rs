//! The names Python NuroPb gives to queues (NUROPB-WIRE.md §1.2).

/// The durable queue every instance of `service` consumes from: `nuropb-{service}-sq`.
///
/// ```
/// assert_eq!(nuropb_proto::mesh::names::service_queue("orders"), "nuropb-orders-sq");
/// ```
pub fn service_queue(service: &str) -> String {
    format!("nuropb-{service}-sq")
}

/// The auto-delete queue responses come back on: `nuropb-{service}-{instance_id}-rq`.
///
/// ```
/// assert_eq!(nuropb_proto::mesh::names::response_queue("orders", "a1"), "nuropb-orders-a1-rq");
/// ```
pub fn response_queue(service: &str, instance_id: &str) -> String {
    format!("nuropb-{service}-{instance_id}-rq")
}

/// The exclusive queue a participant listens to events on: `nuropb-{name}-{instance_id}-eq`.
///
/// ```
/// assert_eq!(nuropb_proto::mesh::names::listen_queue("cli", "a1"), "nuropb-cli-a1-eq");
/// ```
pub fn listen_queue(name: &str, instance_id: &str) -> String {
    format!("nuropb-{name}-{instance_id}-eq")
}

/// The service name of a client-only participant: `{vhost}-client`, so that its response queue
/// is `nuropb-{vhost}-client-{instance_id}-rq`.
///
/// ```
/// use nuropb_proto::mesh::names::{client_name, response_queue};
/// assert_eq!(response_queue(&client_name("prod"), "b2"), "nuropb-prod-client-b2-rq");
/// ```
pub fn client_name(vhost: &str) -> String {
    format!("{vhost}-client")
}

/// The dead-letter queue `configure_mesh` creates: `nuropb-dl-queue`.
pub const DEAD_LETTER_QUEUE: &str = "nuropb-dl-queue";

/// The consumer tag of the response queue's consumer.
pub const RESPONSE_CONSUMER: &str = "nuropb-responses";
/// The consumer tag of the service queue's consumer.
pub const SERVICE_CONSUMER: &str = "nuropb-service";
/// The consumer tag of the listen queue's consumer.
pub const LISTEN_CONSUMER: &str = "nuropb-events";
