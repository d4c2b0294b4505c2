//! Publishing against a scripted broker: the method, header and body frames split at frame_max,
//! mandatory returns, publisher confirms mapped back to each publish, blocked / unblocked.

#[path = "amqp_support/mod.rs"]
mod support;

use nuropb_proto::amqp::{
    AMQPClass, Completion, Config, Confirm, ContentHeader, Error, Event, Frame, Properties,
    Publish, Returned,
};
use support::frames::{self, basic};
use support::{Peer, nuropb_properties};

#[test]
fn a_publish_is_method_header_and_bodies_split_at_the_negotiated_frame_max() {
    let mut peer = Peer::connected_with(Config::default(), 2047, 4096, 60);
    let ch = peer.open_channel();
    let props = nuropb_properties("request");
    let body: Vec<u8> = (0..9000u32).map(|i| i as u8).collect();
    let publish = Publish {
        mandatory: true,
        ..Publish::new("nuropb-rpc-exchange", "research-svc")
    };
    assert_eq!(
        peer.conn.basic_publish(ch, &publish, &props, &body),
        Ok(None)
    );
    assert_eq!(
        peer.expect_method(ch),
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "nuropb-rpc-exchange".into(),
            routing_key: "research-svc".into(),
            mandatory: true,
            immediate: false,
        }))
    );
    assert_eq!(
        peer.expect(),
        Frame::Header(
            ch,
            ContentHeader {
                class_id: 60,
                body_size: 9000,
                properties: props
            }
        )
    );
    let mut got = Vec::new();
    for want in [4088, 4088, 824] {
        match peer.expect() {
            Frame::Body(c, part) if c == ch => {
                assert_eq!(part.len(), want);
                got.extend(part);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, body);
    peer.expect_silence();
}

#[test]
fn the_content_header_is_byte_exact_nuropb_layout() {
    // Python NuroPb's request properties: flags 0xa700, the five headers in order.
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    let props = nuropb_properties("request");
    peer.conn
        .basic_publish(ch, &Publish::new("x", "k"), &props, b"{}")
        .unwrap();
    let mut out = Vec::new();
    peer.conn.poll_transmit(&mut out);
    // after the publish frame: header, ids, ticket, "x", "k", bits, end
    let header_at = 7 + 4 + 2 + 2 + 2 + 1 + 1;
    assert_eq!(
        out[header_at], 2,
        "a content header frame follows the publish"
    );
    let payload = &out[header_at + 7..];
    assert_eq!(&payload[..2], &[0, 60]);
    assert_eq!(&payload[12..14], &[0xa7, 0x00]);
    let text = String::from_utf8_lossy(payload);
    let order: Vec<_> = [
        "nuropb_protocol",
        "nuropb_version",
        "nuropb_type",
        "trace_id",
        "encrypted",
    ]
    .iter()
    .map(|k| text.find(k).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
}

#[test]
fn an_unroutable_mandatory_publish_is_returned() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    let props = nuropb_properties("request");
    peer.conn
        .basic_publish(
            ch,
            &Publish {
                mandatory: true,
                ..Publish::new("nuropb-rpc-exchange", "no-such-service")
            },
            &props,
            b"{\"tag\": \"request\"}",
        )
        .unwrap();
    peer.discard();
    peer.send_content(
        ch,
        frames::basic_return(312, "NO_ROUTE", "nuropb-rpc-exchange", "no-such-service"),
        &props,
        b"{\"tag\": \"request\"}",
    );
    assert_eq!(
        peer.event(),
        Event::Returned(Returned {
            channel: ch,
            reply_code: 312,
            reply_text: "NO_ROUTE".into(),
            exchange: "nuropb-rpc-exchange".into(),
            routing_key: "no-such-service".into(),
            properties: props,
            body: b"{\"tag\": \"request\"}".to_vec(),
        })
    );
}

fn confirming(peer: &mut Peer) -> u16 {
    let ch = peer.open_channel();
    let request = peer.conn.confirm_select(ch, false).unwrap();
    assert_eq!(
        peer.expect_method(ch),
        AMQPClass::Confirm(frames::confirm::AMQPMethod::Select(
            frames::confirm::Select { nowait: false }
        ))
    );
    peer.send(ch, frames::select_ok());
    assert_eq!(
        peer.event(),
        Event::Completed {
            channel: ch,
            id: request,
            result: Ok(Completion::ConfirmSelected)
        }
    );
    ch
}

fn publish(peer: &mut Peer, ch: u16) -> Option<u64> {
    let seq = peer
        .conn
        .basic_publish(ch, &Publish::new("", "q"), &Properties::default(), b"m")
        .unwrap();
    peer.discard();
    seq
}

fn confirmed(events: Vec<Event>) -> Vec<(u64, Confirm)> {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Confirmed { seq, outcome, .. } => Some((seq, outcome)),
            _ => None,
        })
        .collect()
}

#[test]
fn confirms_map_back_to_each_publish() {
    let mut peer = Peer::connected(Config::default());
    let plain = peer.open_channel();
    assert_eq!(
        publish(&mut peer, plain),
        None,
        "no numbers without confirm.select"
    );
    let ch = confirming(&mut peer);
    let seqs: Vec<_> = (0..6).map(|_| publish(&mut peer, ch).unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);

    peer.send(ch, frames::ack(2, false));
    assert_eq!(confirmed(peer.events()), [(2, Confirm::Ack)]);
    peer.send(ch, frames::ack(3, true));
    assert_eq!(
        confirmed(peer.events()),
        [(1, Confirm::Ack), (3, Confirm::Ack)]
    );
    peer.send(ch, frames::nack(4, false, false));
    assert_eq!(confirmed(peer.events()), [(4, Confirm::Nack)]);

    // The channel dies with 5 and 6 outstanding: they are lost, before the close is reported.
    peer.send(
        ch,
        frames::channel_close(406, "PRECONDITION_FAILED - x", 60, 40),
    );
    let events = peer.events();
    assert_eq!(
        confirmed(events.clone()),
        [(5, Confirm::Lost), (6, Confirm::Lost)]
    );
    assert!(matches!(
        events.last(),
        Some(Event::ChannelClosed {
            reply_code: 406,
            ..
        })
    ));
}

#[test]
fn a_return_comes_before_the_confirm_of_the_same_publish() {
    let mut peer = Peer::connected(Config::default());
    let ch = confirming(&mut peer);
    let seq = peer
        .conn
        .basic_publish(
            ch,
            &Publish {
                mandatory: true,
                ..Publish::new("", "nowhere")
            },
            &Properties::default(),
            b"m",
        )
        .unwrap();
    assert_eq!(seq, Some(1));
    peer.send_content(
        ch,
        frames::basic_return(312, "NO_ROUTE", "", "nowhere"),
        &Properties::default(),
        b"m",
    );
    peer.send(ch, frames::ack(1, false));
    let events = peer.events();
    assert!(matches!(
        events[0],
        Event::Returned(Returned {
            reply_code: 312,
            ..
        })
    ));
    assert_eq!(
        events[1],
        Event::Confirmed {
            channel: ch,
            seq: 1,
            outcome: Confirm::Ack
        }
    );
}

#[test]
fn outstanding_confirms_are_lost_when_the_connection_dies() {
    let mut peer = Peer::connected(Config::default());
    let ch = confirming(&mut peer);
    publish(&mut peer, ch);
    publish(&mut peer, ch);
    peer.conn.handle_eof(peer.now);
    let events = peer.events();
    assert_eq!(
        confirmed(events.clone()),
        [(1, Confirm::Lost), (2, Confirm::Lost)]
    );
    assert!(matches!(events.last(), Some(Event::Closed { .. })));
}

#[test]
fn an_ack_for_a_publish_never_made_or_without_confirm_mode_is_a_protocol_error() {
    let mut peer = Peer::connected(Config::default());
    let ch = confirming(&mut peer);
    publish(&mut peer, ch);
    peer.send(ch, frames::ack(2, false));
    peer.expect_violation(503);

    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    peer.send(ch, frames::ack(1, false));
    peer.expect_violation(503);
}

#[test]
fn blocked_and_unblocked_are_reported() {
    let mut peer = Peer::connected(Config::default());
    peer.send(
        0,
        frames::Conn(frames::connection::AMQPMethod::Blocked(
            frames::connection::Blocked {
                reason: "low on memory".into(),
            },
        )),
    );
    assert_eq!(
        peer.event(),
        Event::Blocked {
            reason: "low on memory".into()
        }
    );
    assert!(peer.conn.is_blocked());
    peer.send(
        0,
        frames::Conn(frames::connection::AMQPMethod::Unblocked(
            frames::connection::Unblocked {},
        )),
    );
    assert_eq!(peer.event(), Event::Unblocked);
    assert!(!peer.conn.is_blocked());
}

#[test]
fn publish_names_over_255_bytes_are_refused() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    let long = "k".repeat(300);
    assert_eq!(
        peer.conn
            .basic_publish(ch, &Publish::new("", &long), &Properties::default(), b""),
        Err(Error::ShortStringTooLong {
            field: "routing key",
            len: 300
        })
    );
    peer.expect_silence();
}

#[test]
fn transmit_coalesces_everything_pending_into_one_buffer() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    for _ in 0..3 {
        peer.conn
            .basic_publish(ch, &Publish::new("", "q"), &Properties::default(), b"abc")
            .unwrap();
    }
    peer.conn.basic_ack(ch, 1, false).unwrap();
    let mut buf = Vec::new();
    let n = peer.conn.poll_transmit(&mut buf);
    assert_eq!(n, buf.len());
    let mut frames = Vec::new();
    nuropb_proto::amqp::FrameReader::new(131_072)
        .read(&buf, &mut frames)
        .unwrap();
    assert_eq!(frames.len(), 3 * 3 + 1);
    assert_eq!(peer.conn.poll_transmit(&mut buf), 0, "nothing left");
    // Appending keeps what the buffer held.
    peer.conn.basic_ack(ch, 2, false).unwrap();
    let before = buf.len();
    let n = peer.conn.poll_transmit(&mut buf);
    assert_eq!(buf.len(), before + n);
}
