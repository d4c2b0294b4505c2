//! A scripted broker for tests, in the style of h2's mock peer: the test plays the server, sends
//! frames into the client's state machine and asserts the client's frames, in order, with virtual
//! time.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use nuropb_proto::amqp::frame::{write_content, write_method};
use nuropb_proto::amqp::{
    AMQPClass, AMQPValue, ChannelId, Config, Connection, Event, FieldTable, Frame, FrameReader,
    Properties, Tuning,
};

pub mod frames;

/// The broker side of one client connection.
pub struct Peer {
    pub conn: Connection,
    pub now: Instant,
    reader: FrameReader,
    received: VecDeque<Frame>,
    /// frame_max the peer splits its bodies at.
    pub frame_max: u32,
}

impl Peer {
    /// A fresh client; asserts it sends the protocol header first.
    pub fn new(config: Config) -> Peer {
        let now = Instant::now();
        let conn = Connection::new(config, now).expect("valid config");
        let mut peer = Peer {
            conn,
            now,
            reader: FrameReader::new(u32::MAX),
            received: VecDeque::new(),
            frame_max: 131_072,
        };
        assert_eq!(peer.expect(), Frame::ProtocolHeader([0, 0, 9, 1]));
        peer
    }

    /// A client through the handshake with RabbitMQ-like tuning (2047, 131072, 60); the
    /// `Connected` event has been checked and consumed.
    pub fn connected(config: Config) -> Peer {
        Self::connected_with(config, 2047, 131_072, 60)
    }

    /// Like [`Peer::connected`] with the server's tune proposal.
    pub fn connected_with(
        config: Config,
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16,
    ) -> Peer {
        let vhost = config.vhost.clone();
        let mut peer = Peer::new(config);
        peer.send(0, frames::start());
        assert!(matches!(
            peer.expect_method(0),
            frames::Conn(frames::StartOk(_))
        ));
        peer.send(0, frames::tune(channel_max, frame_max, heartbeat));
        let tune_ok = peer.expect_method(0);
        let AMQPClass::Connection(frames::connection::AMQPMethod::TuneOk(t)) = tune_ok else {
            panic!("expected tune-ok, got {tune_ok:?}");
        };
        assert_eq!(peer.expect_method(0), frames::open(&vhost));
        peer.send(0, frames::open_ok());
        match peer.event() {
            Event::Connected { tuning, .. } => assert_eq!(
                tuning,
                Tuning {
                    channel_max: t.channel_max,
                    frame_max: t.frame_max,
                    heartbeat: t.heartbeat
                }
            ),
            other => panic!("expected Connected, got {other:?}"),
        }
        peer.frame_max = if t.frame_max == 0 {
            u32::MAX
        } else {
            t.frame_max
        };
        peer
    }

    /// Opens a channel and answers it; the `ChannelOpened` event has been consumed.
    pub fn open_channel(&mut self) -> ChannelId {
        let ch = self.conn.open_channel().expect("open_channel");
        assert_eq!(self.expect_method(ch), frames::channel_open());
        self.send(ch, frames::channel_open_ok());
        assert_eq!(self.event(), Event::ChannelOpened { channel: ch });
        ch
    }

    /// Feeds bytes to the client at the current virtual time.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.conn.handle_input(bytes, self.now);
        self.collect();
    }

    /// Encodes a method frame and feeds it.
    pub fn send(&mut self, channel: ChannelId, method: AMQPClass) {
        self.send_bytes(&method_bytes(channel, &method));
    }

    /// A content-carrying method, its header and its body split at the peer's frame_max.
    pub fn send_content(
        &mut self,
        channel: ChannelId,
        method: AMQPClass,
        properties: &Properties,
        body: &[u8],
    ) {
        let bytes = content_bytes(channel, &method, properties, body, self.frame_max);
        self.send_bytes(&bytes);
    }

    /// Moves virtual time forward and lets the client's timers run.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.conn.handle_timeout(self.now);
        self.collect();
    }

    /// Reads whatever the client wants to send into the received-frame queue.
    pub fn collect(&mut self) {
        let mut out = Vec::new();
        self.conn.poll_transmit(&mut out);
        let mut frames = Vec::new();
        self.reader
            .read(&out, &mut frames)
            .expect("the client writes well-formed frames");
        self.received.extend(frames);
    }

    /// Drops whatever the client sent so far, unread.
    pub fn discard(&mut self) {
        self.collect();
        self.received.clear();
    }

    /// The client's next frame.
    pub fn expect(&mut self) -> Frame {
        self.collect();
        self.received
            .pop_front()
            .expect("the client should have sent a frame")
    }

    /// The client's next frame, which must be a method on `channel`.
    pub fn expect_method(&mut self, channel: ChannelId) -> AMQPClass {
        match self.expect() {
            Frame::Method(ch, m) if ch == channel => m,
            other => panic!("expected a method on channel {channel}, got {other:?}"),
        }
    }

    /// The client sent nothing more.
    pub fn expect_silence(&mut self) {
        self.collect();
        assert!(
            self.received.is_empty(),
            "the client sent {:?}",
            self.received
        );
    }

    /// The next event.
    pub fn event(&mut self) -> Event {
        self.conn.poll_event().expect("an event should be pending")
    }

    /// All pending events.
    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }

    /// No event is pending.
    pub fn expect_no_event(&mut self) {
        let events = self.events();
        assert!(events.is_empty(), "unexpected events {events:?}");
    }

    /// The client closes the connection for a protocol violation with `code`; the peer answers
    /// `close-ok` and the final event is checked.
    pub fn expect_violation(&mut self, code: u16) {
        match self.expect_method(0) {
            AMQPClass::Connection(frames::connection::AMQPMethod::Close(c)) => {
                assert_eq!(c.reply_code, code, "close reply code ({})", c.reply_text)
            }
            other => panic!("expected connection.close {code}, got {other:?}"),
        }
        self.send(0, frames::close_ok());
        self.expect_closed_with_violation(code);
    }

    /// The last event is `Closed` for a violation with `code`.
    pub fn expect_closed_with_violation(&mut self, code: u16) {
        let events = self.events();
        match events.last() {
            Some(Event::Closed {
                reply_code,
                error:
                    Some(nuropb_proto::amqp::ConnectionError::ProtocolViolation {
                        reply_code: c, ..
                    }),
                ..
            }) => {
                assert_eq!((*reply_code, *c), (code, code));
            }
            other => panic!("expected Closed with violation {code}, got {other:?} in {events:?}"),
        }
        assert!(self.conn.is_closed());
    }
}

/// The bytes of a method frame.
pub fn method_bytes(channel: ChannelId, method: &AMQPClass) -> Vec<u8> {
    let mut out = Vec::new();
    write_method(&mut out, channel, method);
    out
}

/// The bytes of a content-carrying method, its header and body frames.
pub fn content_bytes(
    channel: ChannelId,
    method: &AMQPClass,
    properties: &Properties,
    body: &[u8],
    frame_max: u32,
) -> Vec<u8> {
    let mut out = method_bytes(channel, method);
    write_content(&mut out, channel, 60, properties, body, frame_max);
    out
}

/// NuroPb-like properties: content type, the five headers in order, correlation id, reply-to,
/// expiration.
pub fn nuropb_properties(kind: &str) -> Properties {
    let mut headers = nuropb_proto::amqp::Headers::default();
    let s = |v: &str| AMQPValue::LongString(v.into());
    headers.insert("nuropb_protocol", s("0.1.1"));
    headers.insert("nuropb_version", s("0.1.8"));
    headers.insert("nuropb_type", s(kind));
    headers.insert("trace_id", s("7f1d0c1e2b3a4c5d6e7f8091a2b3c4d5"));
    headers.insert("encrypted", s(""));
    Properties {
        content_type: Some("application/json".into()),
        headers: Some(headers),
        correlation_id: Some("ce299312f3e1468fbb7aca1d451a3fdc".into()),
        reply_to: Some("nuropb-research-svc-svcinstance00000000000000000000a1-rq".into()),
        expiration: Some("1800000".into()),
        ..Default::default()
    }
}

/// The bytes of a field table (length prefix included) nested `depth` levels deep:
/// {"k": {"k": ...}}, built by hand (amq-protocol's own encoder and `Drop` recurse).
pub fn deep_table_bytes(depth: usize) -> Vec<u8> {
    // Every level is a prefix: key "k", type 'F', then the length of the levels below it.
    let mut table = ((7 * depth) as u32).to_be_bytes().to_vec();
    for level in 1..=depth {
        table.extend_from_slice(&[1, b'k', b'F']);
        table.extend_from_slice(&((7 * (depth - level)) as u32).to_be_bytes());
    }
    table
}

/// A method frame with a hand-made payload.
pub fn raw_method(channel: ChannelId, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![1];
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(0xCE);
    out
}

/// `connection.start` whose server properties nest `depth` levels deep.
pub fn deep_start(depth: usize) -> Vec<u8> {
    let mut payload = vec![0, 10, 0, 10, 0, 9];
    payload.extend_from_slice(&deep_table_bytes(depth));
    for long in [&b"PLAIN"[..], b"en_US"] {
        payload.extend_from_slice(&(long.len() as u32).to_be_bytes());
        payload.extend_from_slice(long);
    }
    raw_method(0, &payload)
}

/// A table nested `depth` levels deep: {"k": {"k": ...}} (keep `depth` small).
pub fn deep_table(depth: usize) -> FieldTable {
    let mut t = FieldTable::default();
    for _ in 0..depth {
        let mut outer = FieldTable::default();
        outer.insert("k".into(), AMQPValue::FieldTable(t));
        t = outer;
    }
    t
}
