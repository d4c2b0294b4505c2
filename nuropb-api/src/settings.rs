//! Connection settings: from an AMQP URL or field by field, as Python NuroPb's connection
//! properties (`host`, `port`, `vhost`, `username`, `password`, `cafile`, `certfile`, `keyfile`,
//! `verify`; port 5671 by default with TLS).

use crate::runtime::Target;
use crate::tls;
use nuropb_proto::NuropbError;
use nuropb_proto::amqp;
use nuropb_proto::mesh::management::{AmqpUrl, redact};
use std::fmt;
use std::path::PathBuf;

/// TLS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// CA certificates (PEM) to verify the broker with; Mozilla's roots when `None`.
    pub cafile: Option<PathBuf>,
    /// Client certificate chain (PEM), for brokers that require client certificates.
    pub certfile: Option<PathBuf>,
    /// The client certificate's private key (PEM); in `certfile` when `None`.
    pub keyfile: Option<PathBuf>,
    /// Whether to verify the broker's certificate and host name (on by default).
    pub verify: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            cafile: None,
            certfile: None,
            keyfile: None,
            verify: true,
        }
    }
}

/// RabbitMQ's default `max_message_size`, 128 MiB.
const DEFAULT_MAX_BODY: u64 = 128 << 20;

/// Where and how to connect to the broker.
///
/// ```
/// use nuropb_api::ConnectionSettings;
/// let settings = ConnectionSettings::from_url("amqps://svc:s3cret@broker.local/prod").unwrap();
/// assert_eq!(settings.port(), 5671);
/// assert_eq!(settings.to_string(), "amqps://svc:***@broker.local:5671/prod");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Broker host.
    pub host: String,
    /// Broker port; 5671 with TLS, 5672 without, when `None`.
    pub port: Option<u16>,
    /// Further nodes of a RabbitMQ cluster (host, port as for `port`): when a node cannot be
    /// reached, the next is tried, in turn. In a URL: `amqp://user:pass@node1,node2:5673/vhost`.
    pub other_nodes: Vec<(String, Option<u16>)>,
    /// Virtual host.
    pub vhost: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// TLS, when the connection is to be secured.
    pub tls: Option<TlsSettings>,
    /// Heartbeat interval to propose, in seconds (Python uses 60).
    pub heartbeat: u16,
    /// The largest message body to take from the broker (128 MiB, RabbitMQ's own default
    /// limit, by default): a larger one is rejected as unreadable — dead-lettered and answered
    /// with a `NuropbMessageError` — without being buffered.
    pub max_body_size: u64,
}

impl Default for ConnectionSettings {
    /// `amqp://guest:guest@127.0.0.1:5672/`.
    fn default() -> Self {
        ConnectionSettings {
            host: "127.0.0.1".to_owned(),
            port: None,
            other_nodes: Vec::new(),
            vhost: "/".to_owned(),
            username: "guest".to_owned(),
            password: "guest".to_owned(),
            tls: None,
            heartbeat: 60,
            max_body_size: DEFAULT_MAX_BODY,
        }
    }
}

impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionSettings({self})")
    }
}

impl fmt::Display for ConnectionSettings {
    /// The URL, with the password hidden.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls.is_some() { "amqps" } else { "amqp" };
        let vhost = if self.vhost == "/" {
            "%2f"
        } else {
            &self.vhost
        };
        write!(f, "{scheme}://{}:***@", self.username)?;
        for (i, (host, port)) in self.nodes().enumerate() {
            let comma = if i == 0 { "" } else { "," };
            write!(f, "{comma}{host}:{port}")?;
        }
        write!(f, "/{vhost}")
    }
}

impl ConnectionSettings {
    /// Settings from `amqp://` or `amqps://` URL (`amqps` turns TLS on with verification).
    pub fn from_url(url: &str) -> Result<ConnectionSettings, NuropbError> {
        let parsed = AmqpUrl::parse(url)
            .map_err(|e| NuropbError::new(nuropb_proto::ErrorKind::Transport, e.to_string()))?;
        Ok(ConnectionSettings {
            host: parsed.host,
            port: parsed.port,
            other_nodes: parsed.other_nodes,
            vhost: parsed.vhost,
            username: parsed.username,
            password: parsed.password,
            tls: parsed.tls.then(TlsSettings::default),
            heartbeat: 60,
            max_body_size: DEFAULT_MAX_BODY,
        })
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port_or_default(self.port)
    }

    fn port_or_default(&self, port: Option<u16>) -> u16 {
        port.unwrap_or(if self.tls.is_some() { 5671 } else { 5672 })
    }

    /// Every node to connect to, in the order they are tried: `host` first, then `other_nodes`.
    ///
    /// ```
    /// use nuropb_api::ConnectionSettings;
    /// let settings = ConnectionSettings::from_url("amqp://u:p@node1,node2:5673/v").unwrap();
    /// let nodes: Vec<_> = settings.nodes().collect();
    /// assert_eq!(nodes, [("node1", 5672), ("node2", 5673)]);
    /// assert_eq!(settings.to_string(), "amqp://u:***@node1:5672,node2:5673/v");
    /// ```
    pub fn nodes(&self) -> impl Iterator<Item = (&str, u16)> {
        std::iter::once((self.host.as_str(), self.port())).chain(
            self.other_nodes
                .iter()
                .map(|(host, port)| (host.as_str(), self.port_or_default(*port))),
        )
    }

    /// The settings with another virtual host.
    pub fn with_vhost(mut self, vhost: impl Into<String>) -> Self {
        self.vhost = vhost.into();
        self
    }

    /// The management API base URL, as Python maps it (port + 10000, https for TLS).
    pub fn management_api(&self) -> String {
        self.management_api_at(&self.host, self.port)
    }

    /// The management API base URL of the node at `host:port`.
    pub(crate) fn management_api_at(&self, host: &str, port: Option<u16>) -> String {
        AmqpUrl {
            tls: self.tls.is_some(),
            username: self.username.clone(),
            password: self.password.clone(),
            host: host.to_owned(),
            port,
            other_nodes: Vec::new(),
            vhost: self.vhost.clone(),
        }
        .management_api()
    }

    /// The AMQP connection configuration.
    pub fn amqp_config(&self) -> amqp::Config {
        let mut config = amqp::Config::new(&self.username, &self.password, &self.vhost);
        config.heartbeat = self.heartbeat;
        config.max_body_size = self.max_body_size;
        config
    }

    /// Where to connect — every node, in the order they are tried — with the TLS configuration
    /// built (once, shared by all).
    pub fn targets(&self) -> Result<Vec<Target>, NuropbError> {
        let tls = match &self.tls {
            Some(tls_settings) => Some(tls::client_config(tls_settings)?),
            None => None,
        };
        Ok(self
            .nodes()
            .map(|(host, port)| Target {
                host: host.to_owned(),
                port,
                tls: tls.clone(),
            })
            .collect())
    }
}

/// `url` with its password hidden.
pub fn obfuscate(url: &str) -> String {
    redact(url)
}
