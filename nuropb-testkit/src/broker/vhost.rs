//! Virtual hosts: each holds its own exchanges and queues.
//!
//! Any virtual host a client opens exists: it is created on its first `connection.open` (unless
//! [`BrokerConfig::auto_create_vhosts`](crate::broker::BrokerConfig::auto_create_vhosts) is off),
//! with RabbitMQ's predeclared exchanges — and NuroPb's mesh exchanges when
//! [`BrokerConfig::declare_mesh_exchanges`](crate::broker::BrokerConfig::declare_mesh_exchanges)
//! is on. Virtual hosts are durable: they survive a restart.

use crate::broker::exchange::{Exchange, ExchangeKind};
use crate::broker::queue::QueueId;
use amq_protocol::types::FieldTable;
use std::collections::BTreeMap;

/// NuroPb's default mesh exchanges (`nuropb.rmq_lib.configure_nuropb_rmq`).
pub(crate) const MESH_EXCHANGES: [(&str, ExchangeKind); 3] = [
    ("nuropb-rpc-exchange", ExchangeKind::Direct),
    ("nuropb-events-exchange", ExchangeKind::Topic),
    ("nuropb-dl-exchange", ExchangeKind::Fanout),
];

/// One virtual host.
#[derive(Debug)]
pub(crate) struct Vhost {
    pub(crate) name: String,
    /// Exchanges by name, the default exchange `""` included.
    pub(crate) exchanges: BTreeMap<String, Exchange>,
    /// Queues by name.
    pub(crate) queues: BTreeMap<String, QueueId>,
}

impl Vhost {
    /// A new virtual host with RabbitMQ's predeclared exchanges (all durable): `""`,
    /// `amq.direct`, `amq.fanout`, `amq.topic`, `amq.headers`, `amq.match` and the internal
    /// `amq.rabbitmq.trace`; plus the mesh exchanges when `mesh` is set.
    pub(crate) fn new(name: &str, mesh: bool) -> Self {
        let mut vhost = Vhost {
            name: name.to_owned(),
            exchanges: BTreeMap::new(),
            queues: BTreeMap::new(),
        };
        let defaults = [
            ("", ExchangeKind::Direct, false),
            ("amq.direct", ExchangeKind::Direct, false),
            ("amq.fanout", ExchangeKind::Fanout, false),
            ("amq.topic", ExchangeKind::Topic, false),
            ("amq.headers", ExchangeKind::Headers, false),
            ("amq.match", ExchangeKind::Headers, false),
            ("amq.rabbitmq.trace", ExchangeKind::Topic, true),
        ];
        for (x, kind, internal) in defaults {
            vhost.add(Exchange::new(
                x,
                kind,
                true,
                false,
                internal,
                FieldTable::default(),
            ));
        }
        if mesh {
            for (x, kind) in MESH_EXCHANGES {
                vhost.add(Exchange::new(
                    x,
                    kind,
                    true,
                    false,
                    false,
                    FieldTable::default(),
                ));
            }
        }
        vhost
    }

    fn add(&mut self, x: Exchange) {
        self.exchanges.insert(x.name.clone(), x);
    }
}
