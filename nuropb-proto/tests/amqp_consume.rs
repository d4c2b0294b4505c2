//! Consuming against a scripted broker: consume (exclusive, no_ack, server tags), deliveries
//! reassembled from header and body frames, ack / nack / reject, cancel from both sides, get.

#[path = "amqp_support/mod.rs"]
mod support;

use nuropb_proto::amqp::{
    AMQPClass, Completion, Config, Consume, Delivery, Event, FieldTable, GetMessage, Properties,
};
use support::frames::{self, basic};
use support::{Peer, nuropb_properties};

fn consuming(peer: &mut Peer) -> u16 {
    let ch = peer.open_channel();
    let consume = Consume {
        exclusive: true,
        no_ack: true,
        ..Consume::new("nuropb-research-svc-svcinstance00000000000000000000a1-rq")
    };
    let request = peer.conn.basic_consume(ch, &consume).unwrap();
    assert_eq!(
        peer.expect_method(ch),
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "nuropb-research-svc-svcinstance00000000000000000000a1-rq".into(),
            consumer_tag: "".into(),
            no_local: false,
            no_ack: true,
            exclusive: true,
            nowait: false,
            arguments: FieldTable::default(),
        }))
    );
    peer.send(
        ch,
        frames::consume_ok("ctag1.f7745e5eb03d431fa4a6727df2213fca"),
    );
    assert_eq!(
        peer.event(),
        Event::Completed {
            channel: ch,
            id: request,
            result: Ok(Completion::ConsumeStarted {
                consumer_tag: "ctag1.f7745e5eb03d431fa4a6727df2213fca".into()
            })
        }
    );
    ch
}

#[test]
fn a_delivery_carries_its_method_fields_properties_and_body() {
    let mut peer = Peer::connected(Config::default());
    let ch = consuming(&mut peer);
    let props = nuropb_properties("request");
    let body = br#"{"tag": "request", "service": "research-svc"}"#;
    peer.send_content(
        ch,
        frames::deliver(
            "ctag1.f7745e5eb03d431fa4a6727df2213fca",
            1,
            false,
            "nuropb-rpc-exchange",
            "research-svc",
        ),
        &props,
        body,
    );
    assert_eq!(
        peer.event(),
        Event::Delivery(Delivery {
            channel: ch,
            consumer_tag: "ctag1.f7745e5eb03d431fa4a6727df2213fca".into(),
            delivery_tag: 1,
            redelivered: false,
            exchange: "nuropb-rpc-exchange".into(),
            routing_key: "research-svc".into(),
            properties: props.clone(),
            body: body.to_vec(),
        })
    );
    peer.expect_no_event();
}

#[test]
fn bodies_across_many_frames_and_empty_bodies_are_reassembled() {
    let mut peer = Peer::connected_with(Config::default(), 2047, 4096, 60);
    let ch = consuming(&mut peer);
    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let bytes = support::content_bytes(
        ch,
        &frames::deliver("ctag", 7, true, "", "q"),
        &Properties::default(),
        &body,
        4096,
    );
    // method, header, then 3 body frames of at most 4088 bytes
    let mut frames_seen = Vec::new();
    nuropb_proto::amqp::FrameReader::new(4096)
        .read(&bytes, &mut frames_seen)
        .unwrap();
    assert_eq!(frames_seen.len(), 5);
    // Fed one frame at a time: nothing until the last body frame.
    let mut at = 0;
    for frame_len in frame_lengths(&bytes) {
        peer.expect_no_event();
        peer.send_bytes(&bytes[at..at + frame_len]);
        at += frame_len;
    }
    match peer.event() {
        Event::Delivery(d) => {
            assert_eq!(d.body, body);
            assert_eq!(d.delivery_tag, 7);
            assert!(d.redelivered);
        }
        other => panic!("{other:?}"),
    }
    // An empty body has a header and no body frame.
    peer.send_content(
        ch,
        frames::deliver("ctag", 8, false, "", "q"),
        &Properties::default(),
        b"",
    );
    assert!(
        matches!(peer.event(), Event::Delivery(Delivery { delivery_tag: 8, ref body, .. }) if body.is_empty())
    );
}

fn frame_lengths(mut bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    while bytes.len() >= 7 {
        let n = u32::from_be_bytes([bytes[3], bytes[4], bytes[5], bytes[6]]) as usize + 8;
        out.push(n);
        bytes = &bytes[n..];
    }
    out
}

#[test]
fn deliveries_on_two_channels_may_interleave_frame_by_frame() {
    let mut peer = Peer::connected(Config::default());
    let a = consuming(&mut peer);
    let b = consuming(&mut peer);
    let da = support::content_bytes(
        a,
        &frames::deliver("ta", 1, false, "", "qa"),
        &Properties::default(),
        b"for a",
        131_072,
    );
    let db = support::content_bytes(
        b,
        &frames::deliver("tb", 1, false, "", "qb"),
        &Properties::default(),
        b"for b",
        131_072,
    );
    let (la, lb) = (frame_lengths(&da), frame_lengths(&db));
    let (mut ia, mut ib) = (0, 0);
    for i in 0..3 {
        peer.send_bytes(&da[ia..ia + la[i]]);
        ia += la[i];
        peer.send_bytes(&db[ib..ib + lb[i]]);
        ib += lb[i];
    }
    let bodies: Vec<_> = peer
        .events()
        .into_iter()
        .map(|e| match e {
            Event::Delivery(d) => (d.channel, d.body),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bodies, [(a, b"for a".to_vec()), (b, b"for b".to_vec())]);
}

#[test]
fn ack_nack_and_reject_go_out_with_their_flags() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    peer.conn.basic_ack(ch, 1, false).unwrap();
    peer.conn.basic_ack(ch, 5, true).unwrap();
    peer.conn.basic_nack(ch, 6, false, true).unwrap();
    peer.conn.basic_nack(ch, 9, true, false).unwrap();
    peer.conn.basic_reject(ch, 10, true).unwrap();
    peer.conn.basic_reject(ch, 11, false).unwrap();
    assert_eq!(peer.expect_method(ch), frames::ack(1, false));
    assert_eq!(peer.expect_method(ch), frames::ack(5, true));
    assert_eq!(peer.expect_method(ch), frames::nack(6, false, true));
    assert_eq!(peer.expect_method(ch), frames::nack(9, true, false));
    assert_eq!(peer.expect_method(ch), frames::reject(10, true));
    assert_eq!(peer.expect_method(ch), frames::reject(11, false));
    assert_eq!(
        peer.conn.basic_ack(99, 1, false),
        Err(nuropb_proto::amqp::Error::ChannelNotOpen(99))
    );
}

#[test]
fn a_broker_cancel_is_an_event_and_is_answered_when_it_asks() {
    let mut peer = Peer::connected(Config::default());
    let ch = consuming(&mut peer);
    // RabbitMQ's notification when the queue is deleted: nowait, no answer.
    peer.send(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: "ctag1.f7745e5eb03d431fa4a6727df2213fca".into(),
            nowait: true,
        })),
    );
    assert_eq!(
        peer.event(),
        Event::ConsumerCancelled {
            channel: ch,
            consumer_tag: "ctag1.f7745e5eb03d431fa4a6727df2213fca".into()
        }
    );
    peer.expect_silence();
    // A cancel that wants an answer gets cancel-ok.
    peer.send(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: "other".into(),
            nowait: false,
        })),
    );
    assert_eq!(
        peer.expect_method(ch),
        AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
            consumer_tag: "other".into()
        }))
    );
    assert!(peer.conn.is_open());
}

#[test]
fn a_client_cancel_completes_with_cancel_ok() {
    let mut peer = Peer::connected(Config::default());
    let ch = consuming(&mut peer);
    let request = peer
        .conn
        .basic_cancel(ch, "ctag1.f7745e5eb03d431fa4a6727df2213fca", false)
        .unwrap();
    assert_eq!(
        peer.expect_method(ch),
        AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: "ctag1.f7745e5eb03d431fa4a6727df2213fca".into(),
            nowait: false
        }))
    );
    // A delivery already on its way still arrives before cancel-ok.
    peer.send_content(
        ch,
        frames::deliver("ctag1.f7745e5eb03d431fa4a6727df2213fca", 2, false, "", "q"),
        &Properties::default(),
        b"late",
    );
    peer.send(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::CancelOk(basic::CancelOk {
            consumer_tag: "ctag1.f7745e5eb03d431fa4a6727df2213fca".into(),
        })),
    );
    let events = peer.events();
    assert!(matches!(
        events[0],
        Event::Delivery(Delivery {
            delivery_tag: 2,
            ..
        })
    ));
    assert_eq!(
        events[1],
        Event::Completed {
            channel: ch,
            id: request,
            result: Ok(Completion::ConsumeCancelled {
                consumer_tag: "ctag1.f7745e5eb03d431fa4a6727df2213fca".into()
            })
        }
    );
}

#[test]
fn no_wait_consume_with_our_tag_needs_no_reply() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    let consume = Consume {
        consumer_tag: "mine".into(),
        no_wait: true,
        ..Consume::new("q")
    };
    peer.conn.basic_consume(ch, &consume).unwrap();
    assert!(matches!(
        peer.expect_method(ch),
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            nowait: true,
            ..
        }))
    ));
    peer.send_content(
        ch,
        frames::deliver("mine", 1, false, "", "q"),
        &Properties::default(),
        b"x",
    );
    assert!(matches!(peer.event(), Event::Delivery(_)));
    // A consume-ok nobody asked for is a protocol error.
    peer.send(ch, frames::consume_ok("mine"));
    peer.expect_violation(503);
}

#[test]
fn get_returns_a_message_or_empty() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    let first = peer.conn.basic_get(ch, "q", false).unwrap();
    let second = peer.conn.basic_get(ch, "q", true).unwrap();
    assert_eq!(
        peer.expect_method(ch),
        AMQPClass::Basic(basic::AMQPMethod::Get(basic::Get {
            queue: "q".into(),
            no_ack: false
        }))
    );
    peer.expect_method(ch);
    let props = nuropb_properties("response");
    peer.send_content(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
            delivery_tag: 4,
            redelivered: true,
            exchange: "".into(),
            routing_key: "q".into(),
            message_count: 0,
        })),
        &props,
        b"{}",
    );
    peer.send(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::GetEmpty(basic::GetEmpty {})),
    );
    assert_eq!(
        peer.events(),
        [
            Event::Completed {
                channel: ch,
                id: first,
                result: Ok(Completion::Got(Box::new(GetMessage {
                    delivery_tag: 4,
                    redelivered: true,
                    exchange: "".into(),
                    routing_key: "q".into(),
                    message_count: 0,
                    properties: props,
                    body: b"{}".to_vec(),
                })))
            },
            Event::Completed {
                channel: ch,
                id: second,
                result: Ok(Completion::GetEmpty)
            }
        ]
    );
}

/// RabbitMQ answers `basic.consume` from the queue's process: its consume-ok can come after the
/// replies to methods sent later. Each reply completes the request waiting for its kind.
#[test]
fn a_consume_ok_overtaken_by_a_later_declare_ok_completes_the_right_requests() {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    let consume = peer.conn.basic_consume(ch, &Consume::new("rq")).unwrap();
    let declare = peer
        .conn
        .queue_declare(ch, &nuropb_proto::amqp::QueueDeclare::new("eq"))
        .unwrap();
    peer.expect_method(ch);
    peer.expect_method(ch);
    peer.send(ch, frames::queue_declare_ok("eq", 0, 0));
    peer.send(ch, frames::consume_ok("ctag-rq"));
    assert_eq!(
        peer.events(),
        [
            Event::Completed {
                channel: ch,
                id: declare,
                result: Ok(Completion::QueueDeclared {
                    queue: "eq".into(),
                    message_count: 0,
                    consumer_count: 0
                })
            },
            Event::Completed {
                channel: ch,
                id: consume,
                result: Ok(Completion::ConsumeStarted {
                    consumer_tag: "ctag-rq".into()
                })
            },
        ]
    );
    assert!(peer.conn.is_open(), "no protocol violation");
}
