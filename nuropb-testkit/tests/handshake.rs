//! The server side of the handshake — protocol header, start (server properties and
//! capabilities), PLAIN/AMQPLAIN login, tune bounds, open and virtual hosts — and time: heartbeats
//! both ways, dead clients, handshake timeouts.

mod support;

use amq_protocol::protocol::{AMQPClass, connection};
use amq_protocol::types::{AMQPValue, FieldTable, LongString};
use nuropb_proto::amqp::frame::{Frame, PROTOCOL_HEADER};
use nuropb_testkit::broker::{BrokerConfig, ConnectionState};
use std::time::Duration;
use support::*;

fn tune_ok(frame_max: u32, channel_max: u16, heartbeat: u16) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::TuneOk(connection::TuneOk {
        channel_max,
        frame_max,
        heartbeat,
    }))
}

fn open(vhost: &str) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
        virtual_host: vhost.into(),
    }))
}

#[test]
fn start_advertises_rabbitmq_capabilities_and_tune_its_limits() {
    let mut h = Harness::new();
    let mut c = h.raw_client();
    c.send_bytes(&mut h, &PROTOCOL_HEADER);
    let (ch, m) = c.next_method(&mut h);
    let AMQPClass::Connection(connection::AMQPMethod::Start(start)) = m else {
        panic!("{m:?}");
    };
    assert_eq!((ch, start.version_major, start.version_minor), (0, 0, 9));
    let Some(AMQPValue::FieldTable(caps)) = start.server_properties.inner().get("capabilities")
    else {
        panic!("no capabilities");
    };
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        assert_eq!(
            caps.inner().get(cap),
            Some(&AMQPValue::Boolean(true)),
            "{cap}"
        );
    }
    assert!(String::from_utf8_lossy(start.mechanisms.as_bytes()).contains("PLAIN"));
    c.send(&mut h, 0, start_ok("guest", "guest", true));
    c.expect(
        &mut h,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
        })),
    );
}

#[test]
fn a_wrong_protocol_header_gets_ours_and_a_close() {
    for header in [
        &b"AMQP\x00\x00\x09\x02"[..],
        b"HTTP/1.1",
        b"AMQP\x01\x01\x00\x09",
    ] {
        let mut h = Harness::new();
        let mut c = h.raw_client();
        // In two pieces, to show the header is buffered.
        c.send_bytes(&mut h, &header[..3]);
        assert_eq!(h.broker.take_transmit(c.id), None);
        c.send_bytes(&mut h, &header[3..]);
        assert_eq!(h.broker.take_transmit(c.id).unwrap(), PROTOCOL_HEADER);
        assert!(h.broker.is_closed(c.id));
    }
}

#[test]
fn bad_credentials_are_refused_with_403_when_the_client_can_take_it() {
    let mut h = Harness::new();
    let mut c = h.raw_client();
    c.send_bytes(&mut h, &PROTOCOL_HEADER);
    c.next_method(&mut h);
    c.send(&mut h, 0, start_ok("guest", "wrong", true));
    c.expect_connection_close(
        &mut h,
        403,
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see \
         the broker logfile.",
        (0, 0),
    );
    assert!(h.broker.is_closed(c.id));
    // Without authentication_failure_close RabbitMQ just drops the socket.
    let mut c = h.raw_client();
    c.send_bytes(&mut h, &PROTOCOL_HEADER);
    c.next_method(&mut h);
    c.send(&mut h, 0, start_ok("guest", "wrong", false));
    c.expect_nothing(&mut h);
    assert!(h.broker.is_closed(c.id));
}

#[test]
fn configured_credentials_and_amqplain() {
    let mut h = Harness::with_config(BrokerConfig {
        user: "svc".into(),
        password: "s3cret".into(),
        ..BrokerConfig::default()
    });
    let mut c = h.raw_client();
    c.send_bytes(&mut h, &PROTOCOL_HEADER);
    c.next_method(&mut h);
    c.send(&mut h, 0, start_ok("guest", "guest", true));
    assert!(matches!(
        c.next_method(&mut h).1,
        AMQPClass::Connection(connection::AMQPMethod::Close(_))
    ));

    let mut c = h.raw_client();
    c.send_bytes(&mut h, &PROTOCOL_HEADER);
    c.next_method(&mut h);
    let mut login = FieldTable::default();
    login.insert("LOGIN".into(), AMQPValue::LongString("svc".into()));
    login.insert("PASSWORD".into(), AMQPValue::LongString("s3cret".into()));
    let bytes = amq_protocol::types::generation::gen_field_table(&login)(
        amq_protocol::frame::WriteContext::from(Vec::new()),
    )
    .unwrap()
    .write;
    c.send(
        &mut h,
        0,
        AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
            client_properties: FieldTable::default(),
            mechanism: "AMQPLAIN".into(),
            response: LongString::from(bytes[4..].to_vec()),
            locale: "en_US".into(),
        })),
    );
    assert!(matches!(
        c.next_method(&mut h).1,
        AMQPClass::Connection(connection::AMQPMethod::Tune(_))
    ));
    c.send(&mut h, 0, tune_ok(131_072, 2047, 0));
    c.send(&mut h, 0, open("/"));
    c.next_method(&mut h);
    assert_eq!(h.broker.connection(c.id).unwrap().user, "svc");
}

#[test]
fn tune_ok_beyond_the_limits_is_refused() {
    for (frame_max, channel_max, text) in [
        (
            100,
            10,
            "NOT_ALLOWED - negotiated frame_max = 100 is lower than the minimum allowed value (4096)",
        ),
        (
            200_000,
            10,
            "NOT_ALLOWED - negotiated frame_max = 200000 is higher than the maximum allowed value \
             (131072)",
        ),
        (
            131_072,
            5000,
            "NOT_ALLOWED - negotiated channel_max = 5000 is higher than the maximum allowed value \
             (2047)",
        ),
    ] {
        let mut h = Harness::new();
        let mut c = h.raw_client();
        c.send_bytes(&mut h, &PROTOCOL_HEADER);
        c.next_method(&mut h);
        c.send(&mut h, 0, start_ok("guest", "guest", true));
        c.next_method(&mut h);
        c.send(&mut h, 0, tune_ok(frame_max, channel_max, 0));
        c.expect_connection_close(&mut h, 530, text, (10, 31));
        assert!(h.broker.is_closed(c.id));
    }
}

#[test]
fn the_negotiated_frame_max_applies_from_the_next_frame() {
    let mut h = Harness::new();
    let mut c = h.raw_client();
    c.send_bytes(&mut h, &PROTOCOL_HEADER);
    c.next_method(&mut h);
    c.send(&mut h, 0, start_ok("guest", "guest", true));
    c.next_method(&mut h);
    // tune-ok for 8192, then (in the same bytes) open, channel.open and a 9000-byte frame.
    let mut bytes = Vec::new();
    nuropb_proto::amqp::frame::write_method(&mut bytes, 0, &tune_ok(8192, 10, 0));
    nuropb_proto::amqp::frame::write_method(&mut bytes, 0, &open("/"));
    nuropb_proto::amqp::frame::write_method(
        &mut bytes,
        1,
        &AMQPClass::Channel(amq_protocol::protocol::channel::AMQPMethod::Open(
            amq_protocol::protocol::channel::Open {},
        )),
    );
    // A publish whose one body frame (6008 bytes) is over the pre-tune 4096 but within 8192.
    bytes.extend_from_slice(&Client::publish_bytes(
        1,
        "",
        "q",
        false,
        &nuropb_proto::amqp::Properties::default(),
        b"",
    ));
    let at = bytes.len() - 22 + 7 + 4;
    bytes[at..at + 8].copy_from_slice(&6000u64.to_be_bytes()); // body_size in the header
    bytes.extend_from_slice(&[3, 0, 1, 0, 0, 0x17, 0x70]);
    bytes.extend_from_slice(&[b'x'; 6000]);
    bytes.push(0xCE);
    bytes.extend_from_slice(&[3, 0, 1, 0, 0, 0x23, 0x28]); // a body frame of 9000 bytes
    c.send_bytes(&mut h, &bytes);
    let frames = c.drain(&mut h);
    assert_eq!(frames.len(), 3, "{frames:?}");
    let Frame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(close))) = &frames[2]
    else {
        panic!("{frames:?}");
    };
    assert_eq!(close.reply_code, 501);
    assert!(close.reply_text.as_str().contains("9008"), "{close:?}");
}

#[test]
fn any_vhost_opened_exists_unless_configured_otherwise() {
    let mut h = Harness::new();
    let _c = h.client("made-on-first-open");
    assert!(h.broker.vhosts().contains(&"made-on-first-open".to_owned()));

    let mut h = Harness::with_config(BrokerConfig {
        auto_create_vhosts: false,
        ..BrokerConfig::default()
    });
    assert!(h.broker.add_vhost("known"));
    let _ok = h.client("known");
    let mut c = h.raw_client();
    c.send_bytes(&mut h, &PROTOCOL_HEADER);
    c.next_method(&mut h);
    c.send(&mut h, 0, start_ok("guest", "guest", true));
    c.next_method(&mut h);
    c.send(&mut h, 0, tune_ok(131_072, 2047, 0));
    c.send(&mut h, 0, open("nope-vhost"));
    c.expect_connection_close(
        &mut h,
        530,
        "NOT_ALLOWED - vhost nope-vhost not found",
        (10, 40),
    );
    assert!(h.broker.is_closed(c.id));
}

#[test]
fn heartbeats_go_out_every_half_interval_when_idle() {
    let mut h = Harness::new();
    let mut c = h.connect("/", 10);
    assert_eq!(h.broker.connection(c.id).unwrap().heartbeat, 10);
    let mut beats = 0;
    for _ in 0..8 {
        h.advance(Duration::from_secs(5));
        c.heartbeat(&mut h); // the client keeps itself alive
        for f in c.drain(&mut h) {
            assert_eq!(f, Frame::Heartbeat(0));
            beats += 1;
        }
    }
    assert!(
        (7..=8).contains(&beats),
        "{beats} heartbeats in 40 s at 10 s"
    );
    assert_eq!(
        h.broker.connection(c.id).unwrap().state,
        ConnectionState::Open
    );
}

#[test]
fn a_silent_client_is_dead_after_two_intervals() {
    let mut h = Harness::new();
    let mut c = h.connect("/", 10);
    c.open_channel(&mut h, 1);
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    c.publish(&mut h, 1, "", "q", "m");
    c.consume(&mut h, 1, "q", "t", false);
    c.expect_delivery(&mut h);
    h.advance(Duration::from_secs(19));
    assert!(!h.broker.is_closed(c.id));
    assert_eq!(
        h.broker.poll_timeout(),
        Some(h.now + Duration::from_secs(1))
    );
    h.advance(Duration::from_secs(1));
    assert!(h.broker.is_closed(c.id), "nothing heard for 2 x 10 s");
    let q = h.broker.queue("/", "q").unwrap();
    assert_eq!(
        (q.messages_ready, q.messages_unacknowledged, q.consumers),
        (1, 0, 0)
    );
    // Any traffic counts as life, not only heartbeats.
    let mut c = h.connect("/", 10);
    for _ in 0..5 {
        h.advance(Duration::from_secs(15));
        c.open_channel(&mut h, 1);
        c.close_channel(&mut h, 1);
    }
    assert!(!h.broker.is_closed(c.id));
}

#[test]
fn a_stalled_handshake_times_out() {
    let mut h = Harness::new();
    let mut c = h.raw_client();
    c.send_bytes(&mut h, &PROTOCOL_HEADER);
    c.next_method(&mut h);
    assert_eq!(
        h.broker.poll_timeout(),
        Some(h.now + Duration::from_secs(10))
    );
    h.advance(Duration::from_secs(10));
    assert!(h.broker.is_closed(c.id));
    assert_eq!(h.broker.poll_timeout(), None);
}

#[test]
fn anything_unexpected_during_the_handshake_drops_the_socket() {
    let mut h = Harness::new();
    let mut c = h.raw_client();
    c.send_bytes(&mut h, &PROTOCOL_HEADER);
    c.next_method(&mut h);
    c.send(
        &mut h,
        1,
        AMQPClass::Channel(amq_protocol::protocol::channel::AMQPMethod::Open(
            amq_protocol::protocol::channel::Open {},
        )),
    );
    c.expect_nothing(&mut h);
    assert!(h.broker.is_closed(c.id));
}
