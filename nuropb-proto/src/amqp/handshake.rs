//! The connection handshake: protocol header → `start` / `start-ok` (SASL PLAIN) → `tune` /
//! `tune-ok` → `open` / `open-ok`, and how a refusal on the way maps to a [`ConnectionError`].

use amq_protocol::protocol::{AMQPClass, connection};
use amq_protocol::types::{LongString, ShortString};

use crate::amqp::config::Config;
use crate::amqp::error::{ConnectionError, Violation, reply_code};
use crate::amqp::event::Tuning;
use crate::amqp::frame::MIN_FRAME_MAX;

/// Where the handshake is: the method it waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Protocol header sent; waiting for `connection.start`.
    Start,
    /// `start-ok` sent; waiting for `connection.tune` (a refusal of the credentials comes here).
    Tune,
    /// `tune-ok` and `open` sent; waiting for `connection.open-ok`.
    OpenOk,
}

/// Checks `connection.start` and answers it with `start-ok`.
pub(crate) fn start_ok(
    config: &Config,
    start: &connection::Start,
) -> Result<AMQPClass, ConnectionError> {
    if (start.version_major, start.version_minor) != (0, 9) {
        return Err(ConnectionError::UnsupportedProtocol([
            0,
            0,
            start.version_major,
            start.version_minor,
        ]));
    }
    let mechanisms = String::from_utf8_lossy(start.mechanisms.as_bytes()).into_owned();
    if !mechanisms.split(' ').any(|m| m == "PLAIN") {
        return Err(ConnectionError::NoPlainMechanism(mechanisms));
    }
    Ok(AMQPClass::Connection(connection::AMQPMethod::StartOk(
        connection::StartOk {
            client_properties: config.client_properties(),
            mechanism: ShortString::from("PLAIN"),
            response: plain_response(config),
            // Checked by Config::validate.
            locale: ShortString::try_new(config.locale.as_str()).unwrap_or_default(),
        },
    )))
}

/// The SASL PLAIN response: `\0user\0password`.
pub(crate) fn plain_response(config: &Config) -> LongString {
    let mut response = Vec::with_capacity(2 + config.username.len() + config.password.len());
    response.push(0);
    response.extend_from_slice(config.username.as_bytes());
    response.push(0);
    response.extend_from_slice(config.password.as_bytes());
    LongString::from(response)
}

/// The lower non-zero of two proposals; 0 only when both are 0 ("no limit").
fn lower_nonzero(ours: u32, theirs: u32) -> u32 {
    match (ours, theirs) {
        (0, x) | (x, 0) => x,
        (a, b) => a.min(b),
    }
}

/// Settles the limits from our proposal and the broker's `connection.tune`.
pub(crate) fn negotiate(config: &Config, tune: &connection::Tune) -> Result<Tuning, Violation> {
    let frame_max = lower_nonzero(config.frame_max, tune.frame_max);
    if frame_max != 0 && frame_max < MIN_FRAME_MAX {
        return Err(Violation::new(
            reply_code::SYNTAX_ERROR,
            format!("frame_max {frame_max} is below the minimum of {MIN_FRAME_MAX}"),
        ));
    }
    let channel_max = match lower_nonzero(config.channel_max.into(), tune.channel_max.into()) {
        0 => u16::MAX,
        n => n as u16,
    };
    Ok(Tuning {
        channel_max,
        frame_max,
        heartbeat: lower_nonzero(config.heartbeat.into(), tune.heartbeat.into()) as u16,
    })
}

/// `tune-ok` for the settled limits, then `open` for the virtual host.
pub(crate) fn tune_ok_and_open(tuning: Tuning, vhost: &str) -> [AMQPClass; 2] {
    [
        AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
            channel_max: tuning.channel_max,
            frame_max: tuning.frame_max,
            heartbeat: tuning.heartbeat,
        })),
        AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
            // Checked by Config::validate.
            virtual_host: ShortString::try_new(vhost).unwrap_or_default(),
        })),
    ]
}

/// What a `connection.close` from the broker during the handshake means.
pub(crate) fn refusal(stage: Stage, close: &connection::Close, vhost: &str) -> ConnectionError {
    let reply_text = close.reply_text.to_string();
    match (stage, close.reply_code) {
        (Stage::Tune, reply_code::ACCESS_REFUSED) => {
            ConnectionError::AuthenticationFailed { reply_text }
        }
        (
            Stage::OpenOk,
            reply_code::NOT_ALLOWED | reply_code::INVALID_PATH | reply_code::ACCESS_REFUSED,
        ) => ConnectionError::VhostNotAllowed {
            vhost: vhost.to_owned(),
            reply_text,
        },
        (_, code) => ConnectionError::ClosedByPeer {
            reply_code: code,
            reply_text,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::FieldTable;

    fn tune(channel_max: u16, frame_max: u32, heartbeat: u16) -> connection::Tune {
        connection::Tune {
            channel_max,
            frame_max,
            heartbeat,
        }
    }

    #[test]
    fn the_lower_non_zero_value_wins() {
        let config = Config::default(); // 2047, 131072, 60
        let t = negotiate(&config, &tune(2047, 131_072, 60)).unwrap();
        assert_eq!(
            (t.channel_max, t.frame_max, t.heartbeat),
            (2047, 131_072, 60)
        );
        let t = negotiate(&config, &tune(100, 8192, 10)).unwrap();
        assert_eq!((t.channel_max, t.frame_max, t.heartbeat), (100, 8192, 10));
        let t = negotiate(&config, &tune(0, 0, 0)).unwrap();
        assert_eq!(
            (t.channel_max, t.frame_max, t.heartbeat),
            (2047, 131_072, 60)
        );
        let none = Config {
            channel_max: 0,
            frame_max: 0,
            heartbeat: 0,
            ..Config::default()
        };
        let t = negotiate(&none, &tune(0, 0, 0)).unwrap();
        assert_eq!((t.channel_max, t.frame_max, t.heartbeat), (u16::MAX, 0, 0));
        let t = negotiate(&none, &tune(5, 5000, 7)).unwrap();
        assert_eq!((t.channel_max, t.frame_max, t.heartbeat), (5, 5000, 7));
    }

    #[test]
    fn a_frame_max_below_the_minimum_is_a_syntax_error() {
        let v = negotiate(&Config::default(), &tune(0, 1000, 0)).unwrap_err();
        assert_eq!(v.code, 502);
    }

    #[test]
    fn plain_response_is_nul_separated() {
        let config = Config::new("guest", "secret", "/");
        assert_eq!(plain_response(&config).as_bytes(), b"\0guest\0secret");
    }

    #[test]
    fn start_needs_0_9_and_plain() {
        let start = |major, minor, mechs: &str| connection::Start {
            version_major: major,
            version_minor: minor,
            server_properties: FieldTable::default(),
            mechanisms: mechs.into(),
            locales: "en_US".into(),
        };
        let config = Config::default();
        assert!(start_ok(&config, &start(0, 9, "AMQPLAIN PLAIN")).is_ok());
        assert_eq!(
            start_ok(&config, &start(0, 9, "AMQPLAIN EXTERNAL")).unwrap_err(),
            ConnectionError::NoPlainMechanism("AMQPLAIN EXTERNAL".into())
        );
        assert_eq!(
            start_ok(&config, &start(1, 0, "PLAIN")).unwrap_err(),
            ConnectionError::UnsupportedProtocol([0, 0, 1, 0])
        );
    }
}
