//! Any chunking of a server byte stream gives the same events and the same client output as
//! feeding it whole: here a synthetic stream with bodies across many frames (frame_max 4096),
//! confirms, a return, a broker cancel, blocked/unblocked, a channel close and a connection close.
//! (`replay.rs` does the same over the recorded captures.)

#[path = "amqp_support/mod.rs"]
mod support;

use std::time::Instant;

use nuropb_proto::amqp::{
    AMQPClass, Config, Connection, Consume, Event, Properties, Publish, QueueDeclare,
};
use proptest::prelude::*;
use support::frames::{self, basic, connection};
use support::{content_bytes, method_bytes, nuropb_properties};

const FRAME_MAX: u32 = 4096;

fn handshake_stream() -> Vec<u8> {
    let mut s = method_bytes(0, &frames::start());
    s.extend(method_bytes(0, &frames::tune(2047, FRAME_MAX, 60)));
    s.extend(method_bytes(0, &frames::open_ok()));
    s
}

/// What the broker sends after the client's commands below.
fn session_stream() -> Vec<u8> {
    let mut s = method_bytes(1, &frames::channel_open_ok());
    s.extend(method_bytes(1, &frames::select_ok()));
    s.extend(method_bytes(
        1,
        &frames::queue_declare_ok("amq.gen-1", 0, 0),
    ));
    s.extend(method_bytes(1, &frames::consume_ok("ctag1.abc")));
    let big: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
    for tag in 1..=5u64 {
        let body: &[u8] = match tag {
            2 => &big,
            3 => b"",
            _ => br#"{"tag": "event", "topic": "t"}"#,
        };
        s.extend(content_bytes(
            1,
            &frames::deliver("ctag1.abc", tag, tag == 4, "nuropb-events-exchange", "t"),
            &nuropb_properties("event"),
            body,
            FRAME_MAX,
        ));
    }
    s.extend(content_bytes(
        1,
        &frames::basic_return(312, "NO_ROUTE", "", "nowhere"),
        &Properties::default(),
        b"returned",
        FRAME_MAX,
    ));
    s.extend(method_bytes(1, &frames::ack(1, false)));
    s.extend(method_bytes(1, &frames::nack(2, false, false)));
    s.extend(method_bytes(
        0,
        &frames::Conn(connection::AMQPMethod::Blocked(connection::Blocked {
            reason: "low on memory".into(),
        })),
    ));
    s.extend(method_bytes(
        0,
        &frames::Conn(connection::AMQPMethod::Unblocked(connection::Unblocked {})),
    ));
    s.extend(method_bytes(
        1,
        &AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
            consumer_tag: "ctag1.abc".into(),
            nowait: false,
        })),
    ));
    s.extend([8, 0, 0, 0, 0, 0, 0, 0xCE]); // a heartbeat
    s.extend(method_bytes(
        1,
        &frames::channel_close(404, "NOT_FOUND - gone", 60, 20),
    ));
    s.extend(method_bytes(
        0,
        &frames::close(320, "CONNECTION_FORCED - bye", 0, 0),
    ));
    s
}

/// Feeds `stream` in chunks of the given sizes (used cyclically).
fn feed(conn: &mut Connection, stream: &[u8], chunks: &[usize], now: Instant) {
    let mut rest = stream;
    for &size in chunks.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at(size.clamp(1, rest.len()));
        conn.handle_input(chunk, now);
        rest = tail;
    }
}

/// The whole session: events and everything the client wrote.
fn run(chunks: &[usize]) -> (Vec<Event>, Vec<u8>) {
    let now = Instant::now();
    let mut conn = Connection::new(Config::default(), now).unwrap();
    let mut out = Vec::new();
    feed(&mut conn, &handshake_stream(), chunks, now);
    let ch = conn.open_channel().unwrap();
    conn.confirm_select(ch, false).unwrap();
    conn.queue_declare(
        ch,
        &QueueDeclare {
            exclusive: true,
            ..QueueDeclare::new("")
        },
    )
    .unwrap();
    conn.basic_consume(ch, &Consume::new("amq.gen-1")).unwrap();
    for _ in 0..3 {
        conn.basic_publish(
            ch,
            &Publish {
                mandatory: true,
                ..Publish::new("", "nowhere")
            },
            &Properties::default(),
            &[1; 5000],
        )
        .unwrap();
    }
    feed(&mut conn, &session_stream(), chunks, now);
    conn.poll_transmit(&mut out);
    let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
    (events, out)
}

#[test]
fn the_whole_stream_gives_the_expected_story() {
    let (events, _) = run(&[usize::MAX]);
    let deliveries = events
        .iter()
        .filter(|e| matches!(e, Event::Delivery(_)))
        .count();
    assert_eq!(deliveries, 5);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Delivery(d) if d.body.len() == 20_000))
    );
    assert!(events.iter().any(|e| matches!(e, Event::Returned(_))));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ConsumerCancelled { .. }))
    );
    assert!(events.iter().any(|e| matches!(e, Event::Blocked { .. })));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::ChannelClosed {
            reply_code: 404,
            ..
        }
    )));
    assert!(matches!(
        events.last(),
        Some(Event::Closed {
            reply_code: 320,
            ..
        })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_chunking_gives_the_same_events_and_output(
        chunks in proptest::collection::vec(1usize..600, 1..50)
    ) {
        let whole = run(&[usize::MAX]);
        let chunked = run(&chunks);
        prop_assert_eq!(chunked.0, whole.0);
        prop_assert_eq!(chunked.1, whole.1);
    }
}

#[test]
fn byte_by_byte_gives_the_same_events_and_output() {
    assert_eq!(run(&[1]), run(&[usize::MAX]));
}
