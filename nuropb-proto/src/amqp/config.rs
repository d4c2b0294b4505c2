//! What a [`Connection`](crate::amqp::Connection) asks the broker for, and how it presents itself.

use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use std::time::Duration;

use crate::amqp::error::Error;

/// Settings of one AMQP client connection.
///
/// The defaults match what Python NuroPb (through pika) asks RabbitMQ for: heartbeat 60 s,
/// frame_max 131 072, channel_max 2047, locale `en_US`, vhost `/`, user `guest`.
///
/// ```
/// use nuropb_proto::amqp::Config;
///
/// let config = Config::new("guest", "guest", "nuropb")
///     .nuropb_identity("research-svc", "svcinstance00000000000000000000a1", false)
///     .connection_name("research-svc on host-1");
/// assert_eq!(config.vhost, "nuropb");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// User name for SASL PLAIN.
    pub username: String,
    /// Password for SASL PLAIN.
    pub password: String,
    /// Virtual host to open.
    pub vhost: String,
    /// Heartbeat interval to propose, in seconds (0 = none from our side).
    pub heartbeat: u16,
    /// Largest frame to propose, framing included (0 = no limit from our side; then this reader
    /// buffers whatever the broker allows, so keep it non-zero).
    pub frame_max: u32,
    /// Highest channel number to propose (0 = no limit from our side, i.e. 65 535).
    pub channel_max: u16,
    /// Locale for `connection.start-ok`.
    pub locale: String,
    /// `product` client property.
    pub product: String,
    /// `version` client property.
    pub version: String,
    /// `platform` client property.
    pub platform: String,
    /// `connection_name` client property (shown by RabbitMQ's management UI), if any.
    pub connection_name: Option<String>,
    /// Further client properties, sent after the standard ones (e.g. NuroPb's `name`,
    /// `instance_id`, `client_only`; see [`Config::nuropb_identity`]).
    pub properties: Vec<(String, AMQPValue)>,
    /// How long the handshake may take, from [`Connection::new`](crate::amqp::Connection::new)
    /// to `connection.open-ok`.
    pub handshake_timeout: Duration,
    /// How long to wait for the broker's `connection.close-ok` after we sent `connection.close`.
    pub close_timeout: Duration,
    /// Largest message body accepted from the broker; a message with a larger announced body is
    /// [`Unreadable`](crate::amqp::Unreadable): its body frames are counted, never buffered,
    /// and the connection goes on.
    pub max_body_size: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            username: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2047,
            locale: "en_US".into(),
            product: "NuroPb".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            platform: "Rust".into(),
            connection_name: None,
            properties: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            max_body_size: 128 * 1024 * 1024,
        }
    }
}

impl Config {
    /// Defaults with the given credentials and virtual host.
    pub fn new(
        username: impl Into<String>,
        password: impl Into<String>,
        vhost: impl Into<String>,
    ) -> Self {
        Config {
            username: username.into(),
            password: password.into(),
            vhost: vhost.into(),
            ..Config::default()
        }
    }

    /// Adds (or replaces) a client property sent in `connection.start-ok`.
    pub fn property(mut self, key: impl Into<String>, value: AMQPValue) -> Self {
        let key = key.into();
        self.properties.retain(|(k, _)| *k != key);
        self.properties.push((key, value));
        self
    }

    /// Sets the `connection_name` client property.
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = Some(name.into());
        self
    }

    /// Adds NuroPb's client properties as Python NuroPb sends them (NUROPB-WIRE.md §2.1): `name`
    /// (the service name), `instance_id`, and `client_only = "true"` for a client-only API.
    pub fn nuropb_identity(
        self,
        name: impl Into<String>,
        instance_id: impl Into<String>,
        client_only: bool,
    ) -> Self {
        let long = |s: String| AMQPValue::LongString(LongString::from(s));
        let config = self
            .property("name", long(name.into()))
            .property("instance_id", long(instance_id.into()));
        if client_only {
            config.property("client_only", long("true".into()))
        } else {
            config
        }
    }

    /// Checks what must fit an AMQP short string.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.frame_max != 0 && self.frame_max < crate::amqp::frame::MIN_FRAME_MAX {
            return Err(Error::FrameMaxTooSmall(self.frame_max));
        }
        short("vhost", &self.vhost)?;
        short("locale", &self.locale)?;
        for (key, _) in &self.properties {
            short("client property name", key)?;
        }
        Ok(())
    }

    /// The client properties table of `connection.start-ok`.
    pub(crate) fn client_properties(&self) -> FieldTable {
        let long = |s: &str| AMQPValue::LongString(LongString::from(s));
        let mut capabilities = FieldTable::default();
        for cap in [
            "authentication_failure_close",
            "basic.nack",
            "connection.blocked",
            "consumer_cancel_notify",
            "publisher_confirms",
        ] {
            capabilities.insert(cap.into(), AMQPValue::Boolean(true));
        }
        let mut table = FieldTable::default();
        table.insert("product".into(), long(&self.product));
        table.insert("version".into(), long(&self.version));
        table.insert("platform".into(), long(&self.platform));
        table.insert("capabilities".into(), AMQPValue::FieldTable(capabilities));
        if let Some(name) = &self.connection_name {
            table.insert("connection_name".into(), long(name));
        }
        for (key, value) in &self.properties {
            if let Ok(key) = ShortString::try_new(key.as_str()) {
                table.insert(key, value.clone());
            }
        }
        table
    }
}

/// A short string from a user-supplied `value`, or a typed error naming `field`.
pub(crate) fn short(field: &'static str, value: &str) -> Result<ShortString, Error> {
    ShortString::try_new(value).map_err(|_| Error::ShortStringTooLong {
        field,
        len: value.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_properties_carry_capabilities_and_nuropb_identity() {
        let config = Config::default()
            .nuropb_identity("nuropb-client", "abc", true)
            .connection_name("conn");
        let table = config.client_properties();
        let caps = match table.inner().get("capabilities") {
            Some(AMQPValue::FieldTable(t)) => t.clone(),
            other => panic!("capabilities: {other:?}"),
        };
        for cap in [
            "publisher_confirms",
            "consumer_cancel_notify",
            "connection.blocked",
            "authentication_failure_close",
            "basic.nack",
        ] {
            assert_eq!(
                caps.inner().get(cap),
                Some(&AMQPValue::Boolean(true)),
                "{cap}"
            );
        }
        let get = |k: &str| table.inner().get(k).cloned();
        assert_eq!(
            get("name"),
            Some(AMQPValue::LongString("nuropb-client".into()))
        );
        assert_eq!(
            get("instance_id"),
            Some(AMQPValue::LongString("abc".into()))
        );
        assert_eq!(
            get("client_only"),
            Some(AMQPValue::LongString("true".into()))
        );
        assert_eq!(
            get("connection_name"),
            Some(AMQPValue::LongString("conn".into()))
        );
        assert_eq!(get("product"), Some(AMQPValue::LongString("NuroPb".into())));
    }

    #[test]
    fn a_service_identity_has_no_client_only_flag() {
        let table = Config::default()
            .nuropb_identity("svc", "i", false)
            .client_properties();
        assert!(!table.contains_key("client_only"));
        assert!(table.contains_key("name"));
    }

    #[test]
    fn long_vhost_is_a_typed_error() {
        let config = Config::new("u", "p", "v".repeat(256));
        assert_eq!(
            config.validate(),
            Err(Error::ShortStringTooLong {
                field: "vhost",
                len: 256
            })
        );
    }
}
