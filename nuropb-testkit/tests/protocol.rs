//! Protocol violations and closing, with the reply codes and texts RabbitMQ 3.10 sends (each
//! checked against it with a raw client): frame errors (501), commands a client may not send
//! (503), channel misuse (504), unexpected frames (505); channel and connection close both ways;
//! a forced close (320) and a broker restart.

mod support;

use amq_protocol::protocol::{AMQPClass, basic, channel, connection};
use amq_protocol::types::FieldTable;
use nuropb_proto::amqp::Properties;
use nuropb_proto::amqp::frame::write_content;
use nuropb_testkit::broker::ConnectionState;
use support::*;

fn channel_open() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Open(channel::Open {}))
}

fn qos() -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
        prefetch_count: 1,
        global: false,
    }))
}

fn publish() -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "".into(),
        routing_key: "x".into(),
        mandatory: false,
        immediate: false,
    }))
}

fn header(ch: u16, body_size: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    write_content(&mut bytes, ch, 60, &Properties::default(), &[], 4096);
    let at = 7 + 4;
    bytes[at..at + 8].copy_from_slice(&(body_size as u64).to_be_bytes());
    bytes
}

/// Opens a fresh connection (channel 1 open), sends `script`, and expects `connection.close`
/// with `code`, `text` and failing method `ids`; the connection then waits for close-ok.
fn violation(
    script: impl FnOnce(&mut Harness, &mut Client),
    code: u16,
    text: &str,
    ids: (u16, u16),
) {
    let mut h = Harness::new();
    let mut c = h.client("/");
    script(&mut h, &mut c);
    c.expect_connection_close(&mut h, code, text, ids);
    c.expect_nothing(&mut h);
    let state = h.broker.connection(c.id).unwrap().state;
    assert!(
        matches!(state, ConnectionState::Closing | ConnectionState::Closed),
        "{state:?}"
    );
}

#[test]
fn a_method_on_a_channel_that_is_not_open() {
    violation(
        |h, c| c.send(h, 2, qos()),
        504,
        "CHANNEL_ERROR - expected 'channel.open'",
        (60, 10),
    );
}

#[test]
fn a_frame_on_a_closed_channel() {
    violation(
        |h, c| {
            c.close_channel(h, 1);
            c.send(h, 1, qos());
        },
        504,
        "CHANNEL_ERROR - expected 'channel.open'",
        (60, 10),
    );
}

#[test]
fn a_second_channel_open() {
    violation(
        |h, c| c.send(h, 1, channel_open()),
        504,
        "CHANNEL_ERROR - second 'channel.open' seen",
        (20, 10),
    );
}

#[test]
fn a_content_header_without_a_method() {
    violation(
        |h, c| c.send_bytes(h, &header(1, 3)),
        505,
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
        (0, 0),
    );
}

#[test]
fn a_second_content_header() {
    violation(
        |h, c| {
            c.send(h, 1, publish());
            c.send_bytes(h, &header(1, 10));
            c.send_bytes(h, &header(1, 10));
        },
        505,
        "UNEXPECTED_FRAME - expected content body, got non content body frame instead",
        (60, 40),
    );
}

#[test]
fn content_on_the_wrong_channel() {
    violation(
        |h, c| {
            c.open_channel(h, 2);
            c.send(h, 1, publish());
            c.send_bytes(h, &header(2, 0));
        },
        505,
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
        (0, 0),
    );
}

#[test]
fn a_method_where_a_content_header_belongs() {
    violation(
        |h, c| {
            c.send(h, 1, publish());
            c.send(h, 1, qos());
        },
        505,
        "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame \
         instead",
        (60, 40),
    );
}

#[test]
fn a_header_of_the_wrong_class() {
    violation(
        |h, c| {
            c.send(h, 1, publish());
            let mut bytes = header(1, 0);
            bytes[7..9].copy_from_slice(&50u16.to_be_bytes());
            c.send_bytes(h, &bytes);
        },
        505,
        "UNEXPECTED_FRAME - expected content header for class 60, got one for class 50 instead",
        (60, 40),
    );
}

#[test]
fn a_body_without_a_header() {
    violation(
        |h, c| c.send_bytes(h, &[3, 0, 1, 0, 0, 0, 3, b'x', b'y', b'z', 0xCE]),
        505,
        "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
        (0, 0),
    );
}

#[test]
fn a_heartbeat_on_a_channel() {
    violation(
        |h, c| c.send_bytes(h, &[8, 0, 1, 0, 0, 0, 0, 0xCE]),
        505,
        "UNEXPECTED_FRAME - type 8, all octets = <<>>",
        (0, 0),
    );
}

#[test]
fn a_basic_method_on_channel_zero() {
    violation(
        |h, c| c.send(h, 0, qos()),
        504,
        "CHANNEL_ERROR - unexpected method in connection state running",
        (60, 10),
    );
}

#[test]
fn a_second_connection_open() {
    violation(
        |h, c| {
            c.send(
                h,
                0,
                AMQPClass::Connection(connection::AMQPMethod::Open(connection::Open {
                    virtual_host: "/".into(),
                })),
            )
        },
        504,
        "CHANNEL_ERROR - unexpected method in connection state running",
        (10, 40),
    );
}

#[test]
fn methods_only_a_server_sends() {
    violation(
        |h, c| {
            c.send(
                h,
                1,
                AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {})),
            )
        },
        503,
        "COMMAND_INVALID - unimplemented method",
        (20, 11),
    );
    violation(
        |h, c| {
            c.send(
                h,
                1,
                AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
            )
        },
        503,
        "COMMAND_INVALID - unimplemented method",
        (20, 41),
    );
    violation(
        |h, c| {
            c.send(
                h,
                1,
                AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                    reply_code: 200,
                    reply_text: "x".into(),
                    class_id: 0,
                    method_id: 0,
                })),
            )
        },
        503,
        "COMMAND_INVALID - unimplemented method",
        (10, 50),
    );
    violation(
        |h, c| {
            c.send(
                h,
                1,
                AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                    consumer_tag: "x".into(),
                    delivery_tag: 1,
                    redelivered: false,
                    exchange: "".into(),
                    routing_key: "k".into(),
                })),
            );
            c.send_bytes(h, &header(1, 0));
        },
        503,
        "COMMAND_INVALID - unimplemented method",
        (60, 60),
    );
}

#[test]
fn refused_features() {
    violation(
        |h, c| {
            let mut bytes = Vec::new();
            nuropb_proto::amqp::frame::write_method(&mut bytes, 1, &qos());
            bytes[7 + 4..7 + 8].copy_from_slice(&10u32.to_be_bytes());
            c.send_bytes(h, &bytes);
        },
        540,
        "NOT_IMPLEMENTED - prefetch_size!=0 (10)",
        (60, 10),
    );
    violation(
        |h, c| {
            c.send(
                h,
                1,
                AMQPClass::Basic(basic::AMQPMethod::Recover(basic::Recover {
                    requeue: false,
                })),
            )
        },
        540,
        "NOT_IMPLEMENTED - requeue=false",
        (60, 110),
    );
    violation(
        |h, c| {
            c.send(
                h,
                1,
                AMQPClass::Channel(channel::AMQPMethod::Flow(channel::Flow { active: false })),
            )
        },
        540,
        "NOT_IMPLEMENTED - active=false",
        (20, 20),
    );
}

#[test]
fn frame_errors_close_at_once() {
    for (bytes, text) in [
        (
            vec![9, 0, 0, 0, 0, 0, 0, 0xCE],
            "FRAME_ERROR - type 9: unknown_frame",
        ),
        (
            vec![8, 0, 0, 0, 0, 0, 0, 0xCF],
            "FRAME_ERROR - frame does not end with 0xCE: invalid_frame_end_marker",
        ),
        (
            vec![1, 0, 1, 0, 0, 0, 4, 0, 99, 0, 1, 0xCE],
            "FRAME_ERROR - cannot decode the method frame on channel 1",
        ),
        (
            vec![3, 0, 1, 0xff, 0xff, 0xff, 0xff],
            "FRAME_ERROR - frame of 4294967303 bytes exceeds frame_max 131072: frame_too_large",
        ),
    ] {
        let mut h = Harness::new();
        let mut c = h.client("/");
        c.send_bytes(&mut h, &bytes);
        c.expect_connection_close(&mut h, 501, text, (0, 0));
        assert!(
            h.broker.is_closed(c.id),
            "the stream is lost: no close-ok to wait for"
        );
    }
}

#[test]
fn a_closing_channel_ignores_all_but_close() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.ack(&mut h, 1, 3, false);
    c.expect(
        &mut h,
        1,
        AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 406,
            reply_text: "PRECONDITION_FAILED - unknown delivery tag 3".into(),
            class_id: 60,
            method_id: 80,
        })),
    );
    // Ignored while closing, content included.
    c.send(&mut h, 1, qos());
    c.publish(&mut h, 1, "", "x", "dropped");
    c.ack(&mut h, 1, 1, false);
    c.expect_nothing(&mut h);
    // A crossing close from the client gets close-ok; the channel still waits for ours.
    c.send(
        &mut h,
        1,
        AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
            reply_code: 200,
            reply_text: "x".into(),
            class_id: 0,
            method_id: 0,
        })),
    );
    c.expect(
        &mut h,
        1,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    );
    c.send(
        &mut h,
        1,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    );
    c.open_channel(&mut h, 1);
}

#[test]
fn connection_close_both_ways() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.send(
        &mut h,
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
            reply_code: 200,
            reply_text: "Normal shutdown".into(),
            class_id: 0,
            method_id: 0,
        })),
    );
    c.expect(
        &mut h,
        0,
        AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
    );
    assert!(h.broker.is_closed(c.id));

    // A connection error, then the client's close-ok.
    let mut c = h.client("/");
    c.send(&mut h, 3, qos());
    c.next_method(&mut h);
    c.send(&mut h, 1, qos()); // ignored while closing
    c.expect_nothing(&mut h);
    c.send(
        &mut h,
        0,
        AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
    );
    assert!(h.broker.is_closed(c.id));
}

#[test]
fn force_close_requeues_and_waits_for_close_ok() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    c.declare_queue(&mut h, 1, "q", FieldTable::default());
    c.publish(&mut h, 1, "", "q", "m");
    c.consume(&mut h, 1, "q", "t", false);
    c.expect_delivery(&mut h);
    assert!(h.broker.force_close(
        c.id,
        320,
        "CONNECTION_FORCED - Closed via management plugin"
    ));
    c.expect_connection_close(
        &mut h,
        320,
        "CONNECTION_FORCED - Closed via management plugin",
        (0, 0),
    );
    let q = h.broker.queue("/", "q").unwrap();
    assert_eq!((q.messages_ready, q.consumers), (1, 0));
    assert_eq!(
        h.broker.connection(c.id).unwrap().state,
        ConnectionState::Closing
    );
    assert!(!h.broker.force_close(c.id, 320, "again"));
    c.send(
        &mut h,
        0,
        AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {})),
    );
    assert!(h.broker.is_closed(c.id));
    h.broker.disconnect(c.id, h.now);
    assert!(h.broker.connection(c.id).is_none());
    // An unanswered close times out.
    let c = h.client("/");
    h.broker.force_close(c.id, 320, "CONNECTION_FORCED - x");
    h.advance(std::time::Duration::from_secs(30));
    assert!(h.broker.is_closed(c.id));
}

#[test]
fn restart_keeps_durable_things_and_persistent_messages() {
    let mut h = Harness::new();
    let mut c = h.client("/");
    let durable_q = |name: &str| {
        AMQPClass::Queue(amq_protocol::protocol::queue::AMQPMethod::Declare(
            amq_protocol::protocol::queue::Declare {
                queue: name.into(),
                passive: false,
                durable: true,
                exclusive: false,
                auto_delete: false,
                nowait: false,
                arguments: FieldTable::default(),
            },
        ))
    };
    c.send(&mut h, 1, durable_q("keep"));
    c.next_method(&mut h);
    c.declare_queue(&mut h, 1, "lose", FieldTable::default());
    c.send(
        &mut h,
        1,
        AMQPClass::Exchange(amq_protocol::protocol::exchange::AMQPMethod::Declare(
            amq_protocol::protocol::exchange::Declare {
                exchange: "dx".into(),
                kind: "fanout".into(),
                passive: false,
                durable: true,
                auto_delete: false,
                internal: false,
                nowait: false,
                arguments: FieldTable::default(),
            },
        )),
    );
    c.next_method(&mut h);
    c.declare_exchange(&mut h, 1, "tx", "fanout");
    c.bind(&mut h, 1, "keep", "dx", "");
    c.bind(&mut h, 1, "lose", "dx", "");
    let persistent = Properties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    c.publish_with(&mut h, 1, "dx", "", false, &persistent, "p1");
    c.publish(&mut h, 1, "dx", "", "transient");
    c.publish_with(&mut h, 1, "dx", "", false, &persistent, "p2");
    c.qos(&mut h, 1, 1, false);
    c.consume(&mut h, 1, "keep", "t", false);
    let first = c.expect_delivery(&mut h);
    assert_eq!(first.text(), "p1");

    h.broker.restart(h.now);
    c.expect_connection_close(
        &mut h,
        320,
        "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'",
        (0, 0),
    );
    assert!(h.broker.is_closed(c.id));
    h.broker.disconnect(c.id, h.now);
    assert!(h.broker.queue("/", "lose").is_none());
    let names: Vec<String> = h
        .broker
        .exchanges("/")
        .into_iter()
        .map(|x| x.name)
        .collect();
    assert!(names.contains(&"dx".to_owned()) && !names.contains(&"tx".to_owned()));
    assert!(
        h.broker
            .bindings("/")
            .iter()
            .any(|b| b.source == "dx" && b.destination == "keep")
    );
    let left: Vec<(Vec<u8>, bool)> = h
        .broker
        .messages("/", "keep")
        .into_iter()
        .map(|m| (m.body, m.redelivered))
        .collect();
    assert_eq!(left, [(b"p1".to_vec(), true), (b"p2".to_vec(), false)]);
    let mut again = h.client("/");
    again.consume(&mut h, 1, "keep", "t", true);
    assert_eq!(again.expect_delivery(&mut h).text(), "p1");
}
