//! One connection to a broker node and the channel the endpoint uses on it: the channel's
//! opening, the startup sequence and the mesh's configuration on it, publishing on it. A session
//! begins with each connection and ends with it.

use crate::amqp::{self, ChannelId, Connection, SyncId};
use crate::mesh::config::{EndpointConfig, MeshNames};
use crate::mesh::{names, topology};
use crate::message::Publication;
use std::collections::HashSet;

/// What a broker's answer to one of the session's own steps finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Finished {
    /// The startup sequence: the endpoint is ready.
    pub(crate) startup: bool,
    /// The mesh's configuration.
    pub(crate) mesh: bool,
}

/// A connection and its channel.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) conn: Connection,
    pub(crate) channel: Option<ChannelId>,
    /// Startup steps not yet answered.
    startup: HashSet<SyncId>,
    /// Mesh configuration steps not yet answered; `Some` while one runs.
    mesh: Option<HashSet<SyncId>>,
    /// Whether the service consumer runs (until [`Session::stop_consuming`]).
    serving: bool,
}

impl Session {
    pub(crate) fn new(conn: Connection) -> Self {
        Session {
            conn,
            channel: None,
            startup: HashSet::new(),
            mesh: None,
            serving: false,
        }
    }

    /// Opens the endpoint's channel and starts the startup sequence on it (NUROPB-WIRE.md §2.2),
    /// configuring the mesh first when `mesh`.
    pub(crate) fn start(
        &mut self,
        config: &EndpointConfig,
        mesh: bool,
    ) -> Result<ChannelId, amqp::Error> {
        let ch = self.conn.open_channel()?;
        self.channel = Some(ch);
        if mesh {
            self.configure_mesh(&config.names)?;
        }
        let mut requests = HashSet::new();
        for step in topology::startup(config).steps {
            requests.insert(step.issue(&mut self.conn, ch)?);
            if matches!(step, topology::Step::ConsumeService(_)) {
                self.serving = true;
            }
        }
        self.startup = requests;
        Ok(ch)
    }

    /// Declares the mesh's exchanges and dead-letter queue on the channel, unless that is under
    /// way already; `Ok(false)` when there is no channel yet.
    pub(crate) fn configure_mesh(&mut self, names: &MeshNames) -> Result<bool, amqp::Error> {
        let Some(ch) = self.channel else {
            return Ok(false);
        };
        if self.mesh.is_some() {
            return Ok(true);
        }
        let mut requests = HashSet::new();
        for step in topology::mesh(names) {
            requests.insert(step.issue(&mut self.conn, ch)?);
        }
        self.mesh = Some(requests);
        Ok(true)
    }

    /// The broker answered `id`: what that finished.
    pub(crate) fn answered(&mut self, id: SyncId) -> Finished {
        let mut finished = Finished::default();
        if let Some(mesh) = &mut self.mesh
            && mesh.remove(&id)
            && mesh.is_empty()
        {
            self.mesh = None;
            finished.mesh = true;
        }
        finished.startup = self.startup.remove(&id) && self.startup.is_empty();
        finished
    }

    /// The channel is gone; `true` when a mesh configuration was under way on it.
    pub(crate) fn lose_channel(&mut self) -> bool {
        self.channel = None;
        self.startup.clear();
        self.serving = false;
        self.mesh.take().is_some()
    }

    /// Stops the service consumer: no new deliveries.
    pub(crate) fn stop_consuming(&mut self) {
        if let Some(ch) = self.channel
            && std::mem::take(&mut self.serving)
        {
            let _ = self.conn.basic_cancel(ch, names::SERVICE_CONSUMER, false);
        }
    }

    /// Publishes on the channel; `false` when there is none or it refuses.
    pub(crate) fn publish(&mut self, p: &Publication) -> bool {
        let Some(ch) = self.channel else { return false };
        let publish = amqp::Publish {
            exchange: p.exchange.as_str(),
            routing_key: p.routing_key.as_str(),
            mandatory: p.mandatory,
            immediate: false,
        };
        self.conn
            .basic_publish_raw(ch, &publish, &p.properties, &p.body)
            .is_ok()
    }
}
