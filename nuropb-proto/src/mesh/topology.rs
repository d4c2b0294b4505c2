//! The mesh's topology as plans of AMQP steps: the mesh itself (NUROPB-WIRE.md §1.1) and an
//! endpoint's startup sequence (§2.2).
//!
//! Consumers get fixed tags ([`names::RESPONSE_CONSUMER`] …) rather than broker-chosen ones, so
//! that deliveries are routed by tag whatever order the broker confirms the consumers in.

use crate::amqp::{self, AMQPValue, ChannelId, Connection, FieldTable, LongString};
use crate::mesh::config::{EndpointConfig, MeshNames};
use crate::mesh::names;

/// One AMQP step of a plan.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `exchange.declare`.
    DeclareExchange(amqp::ExchangeDeclare),
    /// `queue.declare`.
    DeclareQueue(amqp::QueueDeclare),
    /// `queue.bind`.
    Bind(amqp::QueueBind),
    /// `basic.qos` with this prefetch count.
    Qos(u16),
    /// `basic.consume` of the response queue.
    ConsumeResponses(amqp::Consume),
    /// `basic.consume` of the service queue.
    ConsumeService(amqp::Consume),
    /// `basic.consume` of the listen queue.
    ConsumeListen(amqp::Consume),
}

impl Step {
    /// Sends the step on `ch`.
    pub fn issue(&self, conn: &mut Connection, ch: ChannelId) -> Result<amqp::SyncId, amqp::Error> {
        match self {
            Step::DeclareExchange(args) => conn.exchange_declare(ch, args),
            Step::DeclareQueue(args) => conn.queue_declare(ch, args),
            Step::Bind(args) => conn.queue_bind(ch, args),
            Step::Qos(prefetch) => conn.basic_qos(ch, *prefetch, false),
            Step::ConsumeResponses(args)
            | Step::ConsumeService(args)
            | Step::ConsumeListen(args) => conn.basic_consume(ch, args),
        }
    }
}

fn durable_exchange(name: &str, kind: &str) -> Step {
    Step::DeclareExchange(amqp::ExchangeDeclare {
        durable: true,
        ..amqp::ExchangeDeclare::new(name, kind)
    })
}

/// The mesh: the dead-letter exchange and queue, the events and rpc exchanges, in Python's order.
///
/// ```
/// use nuropb_proto::mesh::{topology, MeshNames};
/// assert_eq!(topology::mesh(&MeshNames::default()).len(), 5);
/// ```
pub fn mesh(names: &MeshNames) -> Vec<Step> {
    vec![
        durable_exchange(&names.dead_letter_exchange, "fanout"),
        Step::DeclareQueue(amqp::QueueDeclare::new(&names.dead_letter_queue)),
        Step::Bind(amqp::QueueBind::new(
            &names.dead_letter_queue,
            &names.dead_letter_exchange,
            &names.dead_letter_queue,
        )),
        durable_exchange(&names.exchanges.events, "topic"),
        durable_exchange(&names.exchanges.rpc, "direct"),
    ]
}

/// The startup sequence of an endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Startup {
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// The startup sequence for `config`: response queue; for a service its queue (dead-lettering to
/// the mesh's dead-letter exchange) and bindings; the prefetch; the consumers.
pub fn startup(config: &EndpointConfig) -> Startup {
    let mut steps = vec![Step::DeclareQueue(amqp::QueueDeclare {
        auto_delete: true,
        ..amqp::QueueDeclare::new(config.response_queue())
    })];
    let mut prefetch = 1;
    let mut consume_service = None;
    if let Some(service) = &config.service {
        let queue = names::service_queue(&service.spec.name);
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from(config.names.dead_letter_exchange.clone())),
        );
        if service.quorum_queue {
            arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString(LongString::from("quorum")),
            );
        }
        steps.push(Step::DeclareQueue(amqp::QueueDeclare {
            durable: true,
            arguments,
            ..amqp::QueueDeclare::new(&queue)
        }));
        let mut rpc_keys = vec![service.spec.name.clone()];
        for key in &service.rpc_bindings {
            if !rpc_keys.contains(key) {
                rpc_keys.push(key.clone());
            }
        }
        for key in rpc_keys {
            steps.push(Step::Bind(amqp::QueueBind::new(
                &queue,
                &config.names.exchanges.rpc,
                key,
            )));
        }
        for pattern in &service.event_bindings {
            steps.push(Step::Bind(amqp::QueueBind::new(
                &queue,
                &config.names.exchanges.events,
                pattern,
            )));
        }
        prefetch = service.prefetch;
        consume_service = Some(Step::ConsumeService(amqp::Consume {
            consumer_tag: names::SERVICE_CONSUMER.to_owned(),
            ..amqp::Consume::new(queue)
        }));
    }
    steps.push(Step::Qos(prefetch));
    steps.push(Step::ConsumeResponses(amqp::Consume {
        no_ack: true,
        exclusive: true,
        consumer_tag: names::RESPONSE_CONSUMER.to_owned(),
        ..amqp::Consume::new(config.response_queue())
    }));
    steps.extend(consume_service);
    if !config.listen.is_empty() {
        let queue = config.listen_queue();
        steps.push(Step::DeclareQueue(amqp::QueueDeclare {
            exclusive: true,
            auto_delete: true,
            ..amqp::QueueDeclare::new(&queue)
        }));
        for pattern in &config.listen {
            steps.push(Step::Bind(amqp::QueueBind::new(
                &queue,
                &config.names.exchanges.events,
                pattern,
            )));
        }
        steps.push(Step::ConsumeListen(amqp::Consume {
            no_ack: true,
            exclusive: true,
            consumer_tag: names::LISTEN_CONSUMER.to_owned(),
            ..amqp::Consume::new(queue)
        }));
    }
    Startup { steps }
}
