//! The etcd keys and values of a service's election, shared key for key with Python NuroPb's
//! `nuropb.service_runner.ServiceContainer`.
//!
//! | key | value | written by |
//! |---|---|---|
//! | `/nuropb/{service}/leader` | the leader's instance id, under its lease | the campaign: `IF version(key) == 0 THEN put(key, id, lease)` |
//! | `/nuropb/{service}/rmq-config-ok` | `True` once the mesh is configured, no lease | the leader |
//! | `/nuropb/{service}/health` | a JSON health record, under the leader's lease | a Rust leader (Python writes none) |
//!
//! Everyone watches the prefix `/nuropb/{service}/`.

use std::time::Duration;

/// The lease Python asks for: 15 s.
pub const LEASE_TTL: Duration = Duration::from_secs(15);

/// The value of `rmq-config-ok` that Python readers compare against: `str(True)`.
pub const CONFIG_OK: &str = "True";

/// Which of a service's keys an etcd key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyName {
    /// `/nuropb/{service}/leader`.
    Leader,
    /// `/nuropb/{service}/rmq-config-ok`.
    ConfigOk,
    /// `/nuropb/{service}/health`.
    Health,
}

/// The keys of one service.
///
/// ```
/// use nuropb_container::keys::{KeyName, Keys};
/// let keys = Keys::new("orders");
/// assert_eq!(keys.leader(), "/nuropb/orders/leader");
/// assert_eq!(keys.config_ok(), "/nuropb/orders/rmq-config-ok");
/// assert_eq!(keys.prefix(), "/nuropb/orders/");
/// assert_eq!(keys.name_of(b"/nuropb/orders/leader"), Some(KeyName::Leader));
/// assert_eq!(keys.name_of(b"/nuropb/orders-eu/leader"), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys of `service`.
    pub fn new(service: &str) -> Keys {
        Keys {
            prefix: format!("/nuropb/{service}/"),
        }
    }

    /// The prefix every key of the service starts with, `/nuropb/{service}/`: what is watched.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key of `name`.
    pub fn key(&self, name: KeyName) -> String {
        let last = match name {
            KeyName::Leader => "leader",
            KeyName::ConfigOk => "rmq-config-ok",
            KeyName::Health => "health",
        };
        format!("{}{last}", self.prefix)
    }

    /// `/nuropb/{service}/leader`.
    pub fn leader(&self) -> String {
        self.key(KeyName::Leader)
    }

    /// `/nuropb/{service}/rmq-config-ok`.
    pub fn config_ok(&self) -> String {
        self.key(KeyName::ConfigOk)
    }

    /// `/nuropb/{service}/health`.
    pub fn health(&self) -> String {
        self.key(KeyName::Health)
    }

    /// Which key `key` is, if it is one of the service's.
    pub fn name_of(&self, key: &[u8]) -> Option<KeyName> {
        let rest = key.strip_prefix(self.prefix.as_bytes())?;
        match rest {
            b"leader" => Some(KeyName::Leader),
            b"rmq-config-ok" => Some(KeyName::ConfigOk),
            b"health" => Some(KeyName::Health),
            _ => None,
        }
    }
}
