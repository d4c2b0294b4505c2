//! Protocol violations by the broker close the connection with the right reply code, and no input
//! makes the client panic.

#[path = "amqp_support/mod.rs"]
mod support;

use nuropb_proto::amqp::{AMQPClass, Config, Connection, Event, Properties};
use proptest::prelude::*;
use support::frames::{self, basic, queue};
use support::{Peer, content_bytes, method_bytes};

fn header_bytes(channel: u16, class: u16, body_size: u64) -> Vec<u8> {
    let mut payload = class.to_be_bytes().to_vec();
    payload.extend_from_slice(&[0, 0]);
    payload.extend_from_slice(&body_size.to_be_bytes());
    Properties::default().encode(&mut payload);
    frame(2, channel, &payload)
}

fn frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(0xCE);
    out
}

fn consuming() -> (Peer, u16) {
    let mut peer = Peer::connected(Config::default());
    let ch = peer.open_channel();
    (peer, ch)
}

#[test]
fn a_frame_without_its_end_octet_is_a_frame_error() {
    let (mut peer, _) = consuming();
    let mut bytes = method_bytes(0, &frames::open_ok());
    *bytes.last_mut().unwrap() = 0;
    peer.send_bytes(&bytes);
    peer.expect_method(0);
    peer.expect_closed_with_violation(501);
}

#[test]
fn an_unknown_frame_type_is_a_frame_error() {
    let (mut peer, _) = consuming();
    peer.send_bytes(&frame(7, 0, b""));
    peer.expect_method(0);
    peer.expect_closed_with_violation(501);
}

#[test]
fn a_malformed_method_payload_is_a_frame_error() {
    let (mut peer, ch) = consuming();
    // basic.deliver cut short, and an unknown class.
    peer.send_bytes(&frame(1, ch, &[0, 60, 0, 60, 4, b'c']));
    peer.expect_violation(501);
    let (mut peer, ch) = consuming();
    peer.send_bytes(&frame(1, ch, &[0, 99, 0, 1]));
    peer.expect_violation(501);
}

#[test]
fn a_heartbeat_on_a_channel_is_a_frame_error() {
    let (mut peer, ch) = consuming();
    peer.send_bytes(&frame(8, ch, b""));
    peer.expect_violation(501);
}

#[test]
fn a_frame_on_a_channel_never_opened_is_a_channel_error() {
    let (mut peer, _) = consuming();
    peer.send(7, frames::qos_ok());
    peer.expect_violation(504);
    let (mut peer, _) = consuming();
    peer.send_bytes(&header_bytes(7, 60, 0));
    peer.expect_violation(504);
}

#[test]
fn a_channel_frame_before_the_connection_is_open_is_a_channel_error() {
    let mut peer = Peer::new(Config::default());
    peer.send(0, frames::start());
    peer.expect_method(0);
    peer.send(1, frames::channel_open_ok());
    peer.expect_violation(504);
}

#[test]
fn content_without_a_content_method_is_an_unexpected_frame() {
    let (mut peer, ch) = consuming();
    peer.send_bytes(&header_bytes(ch, 60, 3));
    peer.expect_violation(505);
    let (mut peer, ch) = consuming();
    peer.send_bytes(&frame(3, ch, b"abc"));
    peer.expect_violation(505);
    let (mut peer, _) = consuming();
    peer.send_bytes(&frame(3, 0, b"abc"));
    peer.expect_violation(505);
}

#[test]
fn a_method_where_content_was_expected_is_an_unexpected_frame() {
    let (mut peer, ch) = consuming();
    peer.send(ch, frames::deliver("t", 1, false, "", "q"));
    peer.send(ch, frames::qos_ok());
    peer.expect_violation(505);
    // A body frame before the header, too.
    let (mut peer, ch) = consuming();
    peer.send(ch, frames::deliver("t", 1, false, "", "q"));
    peer.send_bytes(&frame(3, ch, b"x"));
    peer.expect_violation(505);
}

#[test]
fn content_on_the_wrong_channel_is_caught() {
    let mut peer = Peer::connected(Config::default());
    let a = peer.open_channel();
    let b = peer.open_channel();
    peer.send(a, frames::deliver("t", 1, false, "", "q"));
    // The header arrives on the other channel, which expects no content.
    peer.send_bytes(&header_bytes(b, 60, 1));
    peer.expect_violation(505);
}

#[test]
fn a_content_header_of_another_class_is_an_unexpected_frame() {
    let (mut peer, ch) = consuming();
    peer.send(ch, frames::deliver("t", 1, false, "", "q"));
    peer.send_bytes(&header_bytes(ch, 50, 1));
    peer.expect_violation(505);
}

#[test]
fn a_body_larger_than_announced_is_a_frame_error() {
    let (mut peer, ch) = consuming();
    peer.send(ch, frames::deliver("t", 1, false, "", "q"));
    peer.send_bytes(&header_bytes(ch, 60, 2));
    peer.send_bytes(&frame(3, ch, b"abc"));
    peer.expect_violation(501);
}

#[test]
fn replies_nobody_asked_for_are_invalid_commands() {
    let (mut peer, ch) = consuming();
    peer.send(ch, frames::queue_declare_ok("q", 0, 0));
    peer.expect_violation(503);
    // A reply of another kind than any request waits for (replies may overtake one another
    // across kinds, see amqp_consume.rs, but never answer what nobody asked).
    let (mut peer, ch) = consuming();
    peer.conn
        .queue_declare(ch, &nuropb_proto::amqp::QueueDeclare::new("q"))
        .unwrap();
    peer.discard();
    peer.send(ch, frames::qos_ok());
    peer.expect_violation(503);
}

#[test]
fn methods_a_broker_never_sends_are_invalid_commands() {
    let (mut peer, ch) = consuming();
    peer.send(
        ch,
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "".into(),
            routing_key: "q".into(),
            mandatory: false,
            immediate: false,
        })),
    );
    // The close names the offending method.
    match peer.expect_method(0) {
        AMQPClass::Connection(frames::connection::AMQPMethod::Close(c)) => {
            assert_eq!((c.reply_code, c.class_id, c.method_id), (503, 60, 40));
            assert!(c.reply_text.as_str().contains("basic.publish"), "{c:?}");
        }
        other => panic!("{other:?}"),
    }
    peer.send(0, frames::close_ok());
    peer.expect_closed_with_violation(503);
    // A connection method on a channel, and a channel method on channel 0.
    let (mut peer, ch) = consuming();
    peer.send(ch, frames::open_ok());
    peer.expect_violation(503);
    let (mut peer, _) = consuming();
    peer.send(0, frames::channel_open_ok());
    peer.expect_violation(503);
    // A second connection.start.
    let (mut peer, _) = consuming();
    peer.send(0, frames::start());
    peer.expect_violation(503);
}

#[test]
fn a_deeply_nested_table_in_any_method_is_refused_without_overflowing_the_stack() {
    // queue.declare from the broker would be invalid anyway; the point is that decoding it does not
    // recurse 100 000 levels deep.
    let (mut peer, ch) = consuming();
    let mut payload = vec![0, 50, 0, 10, 0, 0, 1, b'q', 0];
    payload.extend_from_slice(&support::deep_table_bytes(100_000));
    peer.send_bytes(&support::raw_method(ch, &payload));
    peer.expect_violation(501);
    // The same frame through the plain frame reader.
    let mut frames_out = Vec::new();
    let err = nuropb_proto::amqp::FrameReader::new(u32::MAX)
        .read(&support::raw_method(ch, &payload), &mut frames_out)
        .unwrap_err();
    assert_eq!(err, nuropb_proto::amqp::FrameError::BadMethod(ch));
    // A content header that size is over frame_max: a frame error before anything is read
    // (one within frame_max is that message's problem: amqp_unreadable.rs).
    let (mut peer, ch) = consuming();
    peer.send(ch, frames::deliver("t", 1, false, "", "q"));
    let mut header = vec![0, 60, 0, 0];
    header.extend_from_slice(&0u64.to_be_bytes());
    header.extend_from_slice(&[0x20, 0]); // headers flag
    header.extend_from_slice(&support::deep_table_bytes(100_000));
    peer.send_bytes(&frame(2, ch, &header));
    peer.expect_violation(501);
}

#[test]
fn a_violation_without_close_ok_ends_after_the_close_timeout() {
    let (mut peer, ch) = consuming();
    peer.send(ch, frames::queue_declare_ok("q", 0, 0));
    peer.expect_method(0);
    peer.expect_no_event();
    peer.advance(peer.conn.config().close_timeout);
    peer.expect_closed_with_violation(503);
}

/// A server byte stream that gets the client connected, with a channel and a consumer.
fn prelude() -> Vec<u8> {
    let mut bytes = method_bytes(0, &frames::start());
    bytes.extend(method_bytes(0, &frames::tune(2047, 131_072, 60)));
    bytes.extend(method_bytes(0, &frames::open_ok()));
    bytes
}

fn connected_client() -> Connection {
    let now = std::time::Instant::now();
    let mut conn = Connection::new(Config::default(), now).unwrap();
    conn.handle_input(&prelude()[..], now);
    assert!(conn.is_open());
    conn.open_channel().unwrap();
    conn
}

fn valid_stream() -> Vec<u8> {
    let mut s = method_bytes(1, &frames::channel_open_ok());
    s.extend(content_bytes(
        1,
        &frames::deliver("ctag", 1, false, "x", "k"),
        &support::nuropb_properties("event"),
        b"{\"a\": 1}",
        131_072,
    ));
    s.extend(method_bytes(
        1,
        &AMQPClass::Queue(queue::AMQPMethod::DeclareOk(queue::DeclareOk {
            queue: "q".into(),
            message_count: 1,
            consumer_count: 2,
        })),
    ));
    s.extend(method_bytes(
        1,
        &frames::channel_close(404, "NOT_FOUND", 50, 10),
    ));
    s.extend(method_bytes(0, &frames::close(320, "bye", 0, 0)));
    s
}

fn drive(conn: &mut Connection, input: &[u8]) {
    let now = std::time::Instant::now();
    conn.handle_input(input, now);
    let mut out = Vec::new();
    conn.poll_transmit(&mut out);
    while conn.poll_event().is_some() {}
    conn.handle_timeout(now + std::time::Duration::from_secs(1000));
    let _ = conn.poll_timeout();
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random bytes, at any state, never panic.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut conn = connected_client();
        drive(&mut conn, &bytes);
        let mut fresh = Connection::new(Config::default(), std::time::Instant::now()).unwrap();
        drive(&mut fresh, &bytes);
    }

    /// Frames with valid framing and random payloads never panic.
    #[test]
    fn random_frames_never_panic(
        frames_in in proptest::collection::vec(
            (0u8..10, 0u16..4, proptest::collection::vec(any::<u8>(), 0..64)),
            1..16,
        )
    ) {
        let mut conn = connected_client();
        let mut bytes = Vec::new();
        for (kind, ch, payload) in &frames_in {
            bytes.extend(frame(*kind, *ch, payload));
        }
        drive(&mut conn, &bytes);
    }

    /// A valid stream with bytes flipped never panics, and every violation ends in `Closed`.
    #[test]
    fn mutated_streams_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut stream = valid_stream();
        for (at, byte) in flips {
            let i = at.index(stream.len());
            stream[i] = byte;
        }
        let mut conn = connected_client();
        let now = std::time::Instant::now();
        conn.handle_input(&stream, now);
        let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
        if let Some(pos) = events.iter().position(|e| matches!(e, Event::Closed { .. })) {
            prop_assert_eq!(pos, events.len() - 1, "Closed is the last event");
        }
    }
}
