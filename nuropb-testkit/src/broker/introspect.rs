//! What tests may ask a broker: virtual hosts, exchanges, queues (depth, consumers), bindings,
//! the messages in a queue, and connections — without going through a client.

use crate::broker::connection::Phase;
use crate::broker::exchange::Destination;
use crate::broker::{Broker, ConnectionId};
use amq_protocol::types::FieldTable;
use nuropb_proto::amqp::Properties;

/// A queue, as `rabbitmqctl list_queues` would show it.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueInfo {
    /// Its name.
    pub name: String,
    /// Declared durable.
    pub durable: bool,
    /// Declared exclusive (owned by the connection that declared it).
    pub exclusive: bool,
    /// Declared auto-delete.
    pub auto_delete: bool,
    /// Its arguments as declared.
    pub arguments: FieldTable,
    /// Messages ready for delivery.
    pub messages_ready: usize,
    /// Body bytes of the ready messages.
    pub message_bytes_ready: usize,
    /// Messages delivered and not yet acknowledged.
    pub messages_unacknowledged: usize,
    /// Consumers.
    pub consumers: usize,
}

/// An exchange.
#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeInfo {
    /// Its name (`""` for the default exchange).
    pub name: String,
    /// `direct`, `fanout`, `topic` or `headers`.
    pub kind: String,
    /// Declared durable.
    pub durable: bool,
    /// Declared auto-delete.
    pub auto_delete: bool,
    /// Declared internal.
    pub internal: bool,
}

/// What a binding leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestinationKind {
    /// A queue.
    Queue,
    /// An exchange (an exchange-to-exchange binding).
    Exchange,
}

/// A binding, as `rabbitmqctl list_bindings` would show it.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingInfo {
    /// The source exchange (`""` for the default exchange's implicit bindings).
    pub source: String,
    /// The destination queue or exchange.
    pub destination: String,
    /// Whether the destination is a queue or an exchange.
    pub destination_kind: DestinationKind,
    /// The binding key.
    pub routing_key: String,
    /// The binding arguments.
    pub arguments: FieldTable,
}

/// A message waiting in a queue.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageInfo {
    /// The exchange it was published (or dead-lettered) to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Whether it has been delivered before.
    pub redelivered: bool,
    /// Its content properties (dead-lettered ones with their `x-death` headers).
    pub properties: Properties,
    /// Its body.
    pub body: Vec<u8>,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionState {
    /// Between the protocol header and `connection.open`.
    Handshake,
    /// Open.
    Open,
    /// The broker sent `connection.close` and waits for `close-ok`.
    Closing,
    /// Done: the socket should be closed.
    Closed,
}

/// A connection.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectionInfo {
    /// Its state.
    pub state: ConnectionState,
    /// The user that logged in (empty before login).
    pub user: String,
    /// The virtual host it opened.
    pub vhost: Option<String>,
    /// The negotiated heartbeat, seconds (0: none).
    pub heartbeat: u16,
    /// The negotiated frame_max.
    pub frame_max: u32,
    /// Open channels.
    pub channels: usize,
    /// Its consumers.
    pub consumers: usize,
    /// The `client_properties` of its `start-ok`.
    pub client_properties: FieldTable,
}

impl Broker {
    fn vhost_id(&self, vhost: &str) -> Option<usize> {
        self.vhost_index.get(vhost).copied()
    }

    /// The virtual hosts, in the order they were created.
    pub fn vhosts(&self) -> Vec<String> {
        self.vhosts.iter().map(|v| v.name.clone()).collect()
    }

    /// The queue `name` of `vhost`.
    pub fn queue(&self, vhost: &str, name: &str) -> Option<QueueInfo> {
        let v = self.vhost_id(vhost)?;
        let q = self.queues.get(self.vhosts[v].queues.get(name)?)?;
        Some(QueueInfo {
            name: q.name.clone(),
            durable: q.durable,
            exclusive: q.exclusive_owner.is_some(),
            auto_delete: q.auto_delete,
            arguments: q.arguments.clone(),
            messages_ready: q.ready(),
            message_bytes_ready: q.ready_bytes(),
            messages_unacknowledged: q.unacked,
            consumers: q.consumers.len(),
        })
    }

    /// The queues of `vhost`, by name.
    pub fn queues(&self, vhost: &str) -> Vec<QueueInfo> {
        let Some(v) = self.vhost_id(vhost) else {
            return Vec::new();
        };
        self.vhosts[v]
            .queues
            .keys()
            .filter_map(|name| self.queue(vhost, name))
            .collect()
    }

    /// The exchanges of `vhost`, by name (the default exchange first).
    pub fn exchanges(&self, vhost: &str) -> Vec<ExchangeInfo> {
        let Some(v) = self.vhost_id(vhost) else {
            return Vec::new();
        };
        self.vhosts[v]
            .exchanges
            .values()
            .map(|x| ExchangeInfo {
                name: x.name.clone(),
                kind: x.kind.as_str().to_owned(),
                durable: x.durable,
                auto_delete: x.auto_delete,
                internal: x.internal,
            })
            .collect()
    }

    /// The bindings of `vhost`: first the default exchange's implicit one for every queue, then
    /// every exchange's bindings in the order they were made.
    pub fn bindings(&self, vhost: &str) -> Vec<BindingInfo> {
        let Some(v) = self.vhost_id(vhost) else {
            return Vec::new();
        };
        let vh = &self.vhosts[v];
        let mut out: Vec<BindingInfo> = vh
            .queues
            .keys()
            .map(|q| BindingInfo {
                source: String::new(),
                destination: q.clone(),
                destination_kind: DestinationKind::Queue,
                routing_key: q.clone(),
                arguments: FieldTable::default(),
            })
            .collect();
        for x in vh.exchanges.values() {
            for b in &x.bindings {
                let (destination, destination_kind) = match &b.destination {
                    Destination::Queue(id) => match self.queues.get(id) {
                        Some(q) => (q.name.clone(), DestinationKind::Queue),
                        None => continue,
                    },
                    Destination::Exchange(name) => (name.clone(), DestinationKind::Exchange),
                };
                out.push(BindingInfo {
                    source: x.name.clone(),
                    destination,
                    destination_kind,
                    routing_key: b.routing_key.clone(),
                    arguments: b.arguments.clone(),
                });
            }
        }
        out
    }

    /// The ready messages of queue `name` in `vhost`, head first (not the unacknowledged ones).
    pub fn messages(&self, vhost: &str, name: &str) -> Vec<MessageInfo> {
        let Some(v) = self.vhost_id(vhost) else {
            return Vec::new();
        };
        let Some(q) = self.vhosts[v]
            .queues
            .get(name)
            .and_then(|id| self.queues.get(id))
        else {
            return Vec::new();
        };
        q.iter()
            .map(|e| MessageInfo {
                exchange: e.msg.exchange.clone(),
                routing_key: e.msg.routing_key.clone(),
                redelivered: e.redelivered,
                properties: e.msg.properties(),
                body: e.msg.body.clone(),
            })
            .collect()
    }

    /// The connections the broker holds (not yet [`disconnect`](Self::disconnect)ed).
    pub fn connections(&self) -> Vec<ConnectionId> {
        self.connections.keys().copied().collect()
    }

    /// Connection `c`.
    pub fn connection(&self, c: ConnectionId) -> Option<ConnectionInfo> {
        let conn = self.connections.get(&c)?;
        let state = match conn.phase {
            Phase::Header | Phase::StartOk | Phase::TuneOk | Phase::Open => {
                ConnectionState::Handshake
            }
            Phase::Running => ConnectionState::Open,
            Phase::Closing => ConnectionState::Closing,
            Phase::Closed => ConnectionState::Closed,
        };
        Some(ConnectionInfo {
            state,
            user: conn.user.clone(),
            vhost: conn.vhost.map(|v| self.vhosts[v].name.clone()),
            heartbeat: conn.heartbeat,
            frame_max: conn.frame_max,
            channels: conn.channels.len(),
            consumers: self.consumers.values().filter(|x| x.conn == c).count(),
            client_properties: conn.client_properties.clone(),
        })
    }
}
