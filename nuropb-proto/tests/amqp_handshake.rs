//! The connection handshake against a scripted broker: start / start-ok with PLAIN and client
//! properties, tune / tune-ok negotiation, open / open-ok, and each way it can be refused.

#[path = "amqp_support/mod.rs"]
mod support;

use std::time::Duration;

use nuropb_proto::amqp::{
    AMQPClass, AMQPValue, Config, Connection, ConnectionError, Error, Event, FieldTable, Frame,
    Tuning,
};
use support::Peer;
use support::frames::{self, connection};

fn config() -> Config {
    Config::new("guest", "guest", "nuropb-cap")
        .nuropb_identity("research-svc", "svcinstance00000000000000000000a1", false)
        .connection_name("research-svc@test")
}

#[test]
fn a_full_handshake_sends_plain_credentials_and_client_properties() {
    let mut peer = Peer::new(config());
    peer.expect_no_event();
    peer.send(0, frames::start());
    let AMQPClass::Connection(connection::AMQPMethod::StartOk(ok)) = peer.expect_method(0) else {
        panic!("expected start-ok");
    };
    assert_eq!(ok.mechanism.as_str(), "PLAIN");
    assert_eq!(ok.response.as_bytes(), b"\0guest\0guest");
    assert_eq!(ok.locale.as_str(), "en_US");
    let props = ok.client_properties.inner();
    let long = |s: &str| Some(AMQPValue::LongString(s.into()));
    assert_eq!(props.get("product").cloned(), long("NuroPb"));
    assert_eq!(props.get("platform").cloned(), long("Rust"));
    assert_eq!(props.get("name").cloned(), long("research-svc"));
    assert_eq!(
        props.get("instance_id").cloned(),
        long("svcinstance00000000000000000000a1")
    );
    assert_eq!(
        props.get("connection_name").cloned(),
        long("research-svc@test")
    );
    assert!(props.get("client_only").is_none());
    let Some(AMQPValue::FieldTable(caps)) = props.get("capabilities") else {
        panic!("no capabilities");
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
    peer.expect_silence();
    assert!(peer.conn.tuning().is_none());

    peer.send(0, frames::tune(2047, 131_072, 60));
    assert_eq!(peer.expect_method(0), frames::tune_ok(2047, 131_072, 60));
    assert_eq!(peer.expect_method(0), frames::open("nuropb-cap"));
    peer.expect_no_event();
    assert!(!peer.conn.is_open());
    assert_eq!(
        peer.conn.open_channel(),
        Err(Error::NotConnected),
        "no channels before open-ok"
    );

    peer.send(0, frames::open_ok());
    match peer.event() {
        Event::Connected {
            tuning,
            server_properties,
        } => {
            assert_eq!(
                tuning,
                Tuning {
                    channel_max: 2047,
                    frame_max: 131_072,
                    heartbeat: 60
                }
            );
            assert_eq!(
                server_properties.inner().get("product"),
                Some(&AMQPValue::LongString("RabbitMQ".into()))
            );
        }
        other => panic!("expected Connected, got {other:?}"),
    }
    assert!(peer.conn.is_open());
    peer.expect_silence();
}

#[test]
fn a_client_only_identity_says_so() {
    let mut peer = Peer::new(Config::default().nuropb_identity("vh-client", "abc", true));
    peer.send(0, frames::start());
    let AMQPClass::Connection(connection::AMQPMethod::StartOk(ok)) = peer.expect_method(0) else {
        panic!("expected start-ok");
    };
    assert_eq!(
        ok.client_properties.inner().get("client_only"),
        Some(&AMQPValue::LongString("true".into()))
    );
}

#[test]
fn tuning_takes_the_lower_non_zero_value_of_each_side() {
    // Server proposes no limits: ours stand.
    let ours = Config {
        channel_max: 100,
        frame_max: 8192,
        heartbeat: 10,
        ..Config::default()
    };
    let peer = Peer::connected_with(ours.clone(), 0, 0, 0);
    assert_eq!(
        peer.conn.tuning(),
        Some(Tuning {
            channel_max: 100,
            frame_max: 8192,
            heartbeat: 10
        })
    );
    // Server is stricter: its values stand.
    let peer = Peer::connected_with(ours, 10, 4096, 5);
    assert_eq!(
        peer.conn.tuning(),
        Some(Tuning {
            channel_max: 10,
            frame_max: 4096,
            heartbeat: 5
        })
    );
    // We propose no limits: the server's stand; both 0 leaves heartbeats off.
    let none = Config {
        channel_max: 0,
        frame_max: 0,
        heartbeat: 0,
        ..Config::default()
    };
    let peer = Peer::connected_with(none.clone(), 0, 0, 0);
    assert_eq!(
        peer.conn.tuning(),
        Some(Tuning {
            channel_max: u16::MAX,
            frame_max: 0,
            heartbeat: 0
        })
    );
    assert_eq!(peer.conn.poll_timeout(), None, "no heartbeat timer");
}

#[test]
fn the_negotiated_frame_max_is_enforced_from_the_next_frame_on() {
    let mut peer = Peer::connected_with(Config::default(), 0, 4096, 0);
    // A frame header announcing 4089 payload bytes: 4097 with framing, one too many. Only the
    // 7-byte header is sent: the client refuses it before any payload arrives.
    peer.send_bytes(&[3, 0, 1, 0, 0, 0x0f, 0xf9]);
    match peer.expect_method(0) {
        AMQPClass::Connection(connection::AMQPMethod::Close(c)) => assert_eq!(c.reply_code, 501),
        other => panic!("{other:?}"),
    }
    // The stream is unreadable now: the connection is over at once.
    peer.expect_closed_with_violation(501);
}

#[test]
fn a_frame_max_below_4096_from_the_broker_is_a_syntax_error() {
    let mut peer = Peer::new(Config::default());
    peer.send(0, frames::start());
    peer.expect_method(0);
    peer.send(0, frames::tune(0, 1024, 0));
    peer.expect_violation(502);
}

#[test]
fn refused_credentials_by_close_403_are_an_authentication_error() {
    let mut peer = Peer::new(Config::new("guest", "wrong", "/"));
    peer.send(0, frames::start());
    peer.expect_method(0);
    peer.send(
        0,
        frames::close(
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN.",
            0,
            0,
        ),
    );
    assert_eq!(peer.expect_method(0), frames::close_ok());
    match peer.event() {
        Event::Closed {
            reply_code: 403,
            by_peer: true,
            error: Some(ConnectionError::AuthenticationFailed { reply_text }),
            ..
        } => assert!(reply_text.starts_with("ACCESS_REFUSED")),
        other => panic!("{other:?}"),
    }
    assert!(peer.conn.is_closed());
    assert_eq!(peer.conn.poll_timeout(), None);
}

#[test]
fn the_socket_closing_right_after_start_ok_is_an_authentication_error() {
    let mut peer = Peer::new(Config::new("guest", "wrong", "/"));
    peer.send(0, frames::start());
    peer.expect_method(0);
    peer.conn.handle_eof(peer.now);
    assert!(matches!(
        peer.event(),
        Event::Closed {
            error: Some(ConnectionError::AuthenticationFailed { .. }),
            by_peer: true,
            ..
        }
    ));
}

#[test]
fn an_unknown_vhost_is_a_vhost_error() {
    let mut peer = Peer::new(Config::new("guest", "guest", "no-such-vhost"));
    peer.send(0, frames::start());
    peer.expect_method(0);
    peer.send(0, frames::tune(2047, 131_072, 60));
    peer.expect_method(0);
    peer.expect_method(0);
    peer.send(
        0,
        frames::close(530, "NOT_ALLOWED - vhost no-such-vhost not found", 10, 40),
    );
    assert_eq!(peer.expect_method(0), frames::close_ok());
    assert_eq!(
        peer.event(),
        Event::Closed {
            reply_code: 530,
            reply_text: "NOT_ALLOWED - vhost no-such-vhost not found".into(),
            by_peer: true,
            error: Some(ConnectionError::VhostNotAllowed {
                vhost: "no-such-vhost".into(),
                reply_text: "NOT_ALLOWED - vhost no-such-vhost not found".into()
            }),
        }
    );
}

#[test]
fn a_broker_without_plain_or_0_9_is_refused() {
    let mut peer = Peer::new(Config::default());
    peer.send(0, frames::start_with(FieldTable::default(), "EXTERNAL"));
    peer.expect_silence();
    assert!(matches!(
        peer.event(),
        Event::Closed {
            error: Some(ConnectionError::NoPlainMechanism(m)),
            ..
        } if m == "EXTERNAL"
    ));

    let mut peer = Peer::new(Config::default());
    peer.send_bytes(b"AMQP\x00\x00\x09\x00");
    assert!(matches!(
        peer.event(),
        Event::Closed {
            error: Some(ConnectionError::UnsupportedProtocol([0, 0, 9, 0])),
            ..
        }
    ));
}

#[test]
fn a_secure_challenge_is_answered_with_the_credentials() {
    let mut peer = Peer::new(Config::new("u", "p", "/"));
    peer.send(0, frames::start());
    peer.expect_method(0);
    peer.send(
        0,
        frames::Conn(connection::AMQPMethod::Secure(connection::Secure {
            challenge: "?".into(),
        })),
    );
    match peer.expect_method(0) {
        AMQPClass::Connection(connection::AMQPMethod::SecureOk(ok)) => {
            assert_eq!(ok.response.as_bytes(), b"\0u\0p")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_handshake_that_stalls_times_out() {
    let mut peer = Peer::new(Config {
        handshake_timeout: Duration::from_secs(3),
        ..Config::default()
    });
    assert_eq!(
        peer.conn.poll_timeout(),
        Some(peer.now + Duration::from_secs(3))
    );
    peer.advance(Duration::from_millis(2999));
    peer.expect_no_event();
    peer.advance(Duration::from_millis(1));
    assert!(matches!(
        peer.event(),
        Event::Closed {
            error: Some(ConnectionError::HandshakeTimeout),
            ..
        }
    ));
}

#[test]
fn configuration_that_cannot_go_on_the_wire_is_refused_up_front() {
    let now = std::time::Instant::now();
    assert_eq!(
        Connection::new(Config::new("u", "p", "v".repeat(300)), now).unwrap_err(),
        Error::ShortStringTooLong {
            field: "vhost",
            len: 300
        }
    );
    assert_eq!(
        Connection::new(
            Config {
                frame_max: 1000,
                ..Config::default()
            },
            now
        )
        .unwrap_err(),
        Error::FrameMaxTooSmall(1000)
    );
}

#[test]
fn a_deeply_nested_server_properties_table_is_refused_without_overflowing_the_stack() {
    // 100 000 nested tables in connection.start would overflow the stack of amq-protocol's
    // recursive parser; the nesting check refuses the frame first.
    let config = Config {
        frame_max: 0,
        ..Config::default()
    };
    let mut peer = Peer::new(config);
    let bytes = support::deep_start(100_000);
    assert!(bytes.len() > 700_000);
    peer.send_bytes(&bytes);
    // Before start-ok there is nothing to close: the client just ends.
    peer.expect_silence();
    assert!(matches!(
        peer.event(),
        Event::Closed {
            reply_code: 501,
            error: Some(ConnectionError::ProtocolViolation {
                reply_code: 501,
                ..
            }),
            ..
        }
    ));
    // A table within the limit is fine, by the same hand-made encoding.
    let mut peer = Peer::new(Config::default());
    peer.send_bytes(&support::deep_start(10));
    assert!(matches!(peer.expect(), Frame::Method(0, _)));
    peer.expect_no_event();
}
