//! Server-side method builders.

#[allow(unused_imports)]
pub use amq_protocol::protocol::{basic, channel, confirm, connection, exchange, queue};
pub use nuropb_proto::amqp::AMQPClass;
use nuropb_proto::amqp::{AMQPValue, FieldTable};

pub use AMQPClass::Connection as Conn;
pub use connection::AMQPMethod::StartOk;

/// RabbitMQ 3.10's connection.start.
pub fn start() -> AMQPClass {
    let mut caps = FieldTable::default();
    for c in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        caps.insert(c.into(), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props.insert(
        "cluster_name".into(),
        AMQPValue::LongString("rabbit@vm".into()),
    );
    props.insert("product".into(), AMQPValue::LongString("RabbitMQ".into()));
    props.insert("version".into(), AMQPValue::LongString("3.10.8".into()));
    start_with(props, "AMQPLAIN PLAIN")
}

pub fn start_with(server_properties: FieldTable, mechanisms: &str) -> AMQPClass {
    Conn(connection::AMQPMethod::Start(connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties,
        mechanisms: mechanisms.into(),
        locales: "en_US".into(),
    }))
}

pub fn tune(channel_max: u16, frame_max: u32, heartbeat: u16) -> AMQPClass {
    Conn(connection::AMQPMethod::Tune(connection::Tune {
        channel_max,
        frame_max,
        heartbeat,
    }))
}

pub fn tune_ok(channel_max: u16, frame_max: u32, heartbeat: u16) -> AMQPClass {
    Conn(connection::AMQPMethod::TuneOk(connection::TuneOk {
        channel_max,
        frame_max,
        heartbeat,
    }))
}

pub fn open(vhost: &str) -> AMQPClass {
    Conn(connection::AMQPMethod::Open(connection::Open {
        virtual_host: vhost.into(),
    }))
}

pub fn open_ok() -> AMQPClass {
    Conn(connection::AMQPMethod::OpenOk(connection::OpenOk {}))
}

pub fn close(reply_code: u16, reply_text: &str, class_id: u16, method_id: u16) -> AMQPClass {
    Conn(connection::AMQPMethod::Close(connection::Close {
        reply_code,
        reply_text: reply_text.into(),
        class_id,
        method_id,
    }))
}

pub fn close_ok() -> AMQPClass {
    Conn(connection::AMQPMethod::CloseOk(connection::CloseOk {}))
}

pub fn channel_open() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}))
}

pub fn channel_open_ok() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {}))
}

pub fn channel_close(
    reply_code: u16,
    reply_text: &str,
    class_id: u16,
    method_id: u16,
) -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
        reply_code,
        reply_text: reply_text.into(),
        class_id,
        method_id,
    }))
}

pub fn channel_close_ok() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))
}

pub fn deliver(
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
        consumer_tag: consumer_tag.into(),
        delivery_tag,
        redelivered,
        exchange: exchange.into(),
        routing_key: routing_key.into(),
    }))
}

pub fn basic_return(
    reply_code: u16,
    reply_text: &str,
    exchange: &str,
    routing_key: &str,
) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
        reply_code,
        reply_text: reply_text.into(),
        exchange: exchange.into(),
        routing_key: routing_key.into(),
    }))
}

pub fn ack(delivery_tag: u64, multiple: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
        delivery_tag,
        multiple,
    }))
}

pub fn nack(delivery_tag: u64, multiple: bool, requeue: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
        delivery_tag,
        multiple,
        requeue,
    }))
}

pub fn reject(delivery_tag: u64, requeue: bool) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Reject(basic::Reject {
        delivery_tag,
        requeue,
    }))
}

pub fn queue_declare_ok(queue: &str, message_count: u32, consumer_count: u32) -> AMQPClass {
    AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
        queue: queue.into(),
        message_count,
        consumer_count,
    }))
}

pub fn consume_ok(consumer_tag: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(basic::ConsumeOk {
        consumer_tag: consumer_tag.into(),
    }))
}

pub fn qos_ok() -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {}))
}

pub fn select_ok() -> AMQPClass {
    AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(confirm::SelectOk {}))
}
