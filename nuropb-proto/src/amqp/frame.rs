//! Frames: reading them from arbitrarily chunked bytes, writing them into a buffer.
//!
//! [`FrameReader`] takes whatever the socket gave — half a frame, many frames — and yields whole
//! [`Frame`]s. It reads the 7-byte frame header first and refuses a frame larger than `frame_max`
//! before buffering its payload, so a peer cannot make it hold more than one frame's worth of bytes.
//! Method payloads are decoded by `amq-protocol`; content headers by [`Properties`], which keeps the
//! order of header tables.
//!
//! The `write_*` functions append frames to a `Vec<u8>`; [`write_content`] splits a body into body
//! frames of at most `frame_max - 8` bytes.
//!
//! [`FrameReader::next_raw`] is the allocation-free form of [`FrameReader::read`]: it hands out one
//! [`RawFrame`] at a time (type, channel, payload borrowed from the input or the reader's buffer), so a
//! caller can take a fast path for hot methods and decode the rest with [`RawFrame::decode`].
//!
//! Field tables inside method frames (`connection.start`, `queue.declare`, `basic.consume`, …) are
//! checked for nesting depth before `amq-protocol`'s recursive parser sees them: a peer cannot
//! overflow the stack with a deeply nested table.

use crate::amqp::properties::{Properties, PropertiesError, check_table_nesting};
use amq_protocol::frame::{GenError, WriteContext};
use amq_protocol::protocol::{AMQPClass, gen_class, parse_class};
use amq_protocol::types::ChannelId;

/// The protocol header a client sends first: `AMQP` 0 0 9 1.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";
/// Bytes of framing around a payload: type (1), channel (2), size (4) and the end octet (1).
pub const FRAME_OVERHEAD: usize = 8;
/// The smallest `frame_max` a peer may negotiate, and the limit before tuning (AMQP 0-9-1 §4.2.3).
pub const MIN_FRAME_MAX: u32 = 4096;
/// The octet that ends every frame.
pub const FRAME_END: u8 = 0xCE;

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;

/// One decoded frame.
// A content header is large; frames are short-lived values, so it is not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// A protocol header: the four bytes after `AMQP` (`[0, 0, 9, 1]` for AMQP 0-9-1).
    ProtocolHeader([u8; 4]),
    /// A method frame.
    Method(ChannelId, AMQPClass),
    /// A content header frame.
    Header(ChannelId, ContentHeader),
    /// A content body frame.
    Body(ChannelId, Vec<u8>),
    /// A heartbeat; on any channel but 0 it is a protocol violation for the receiver to act on.
    Heartbeat(ChannelId),
}

/// The content header that follows a content-carrying method (publish, deliver, return, get-ok).
#[derive(Clone, Debug, PartialEq)]
pub struct ContentHeader {
    /// The class of the method it belongs to: 60 (basic).
    pub class_id: u16,
    /// The total size of the body frames that follow.
    pub body_size: u64,
    /// The message properties.
    pub properties: Properties,
}

/// Why bytes could not be read as frames. Every kind closes the connection with reply code 501
/// (`FRAME_ERROR`), see [`FrameError::reply_code`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame header announces more than the negotiated `frame_max`.
    #[error("frame of {size} bytes exceeds frame_max {frame_max}")]
    TooLarge {
        /// Total frame size, framing included.
        size: u64,
        /// The limit in force.
        frame_max: u32,
    },
    /// The frame does not end with `0xCE`.
    #[error("frame does not end with 0xCE")]
    BadFrameEnd,
    /// The frame type octet is none of method, header, body, heartbeat.
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    /// Bytes starting with `A` that are not `AMQP`.
    #[error("malformed protocol header")]
    BadProtocolHeader,
    /// A method frame whose payload is not a known, well-formed method.
    #[error("malformed method frame on channel {0}")]
    BadMethod(ChannelId),
    /// A content header frame whose payload is malformed.
    #[error("malformed content header on channel {channel}: {error}")]
    BadHeader {
        /// The channel of the frame.
        channel: ChannelId,
        /// What was wrong with the properties.
        error: PropertiesError,
    },
}

impl FrameError {
    /// The AMQP reply code to close the connection with: 501 `FRAME_ERROR`.
    pub fn reply_code(&self) -> u16 {
        crate::amqp::reply_code::FRAME_ERROR
    }
}

/// Reassembles frames from chunks of bytes.
///
/// ```
/// use nuropb_proto::amqp::frame::{write_heartbeat, Frame, FrameReader};
///
/// let mut bytes = Vec::new();
/// write_heartbeat(&mut bytes);
/// write_heartbeat(&mut bytes);
/// let mut reader = FrameReader::new(4096);
/// let mut frames = Vec::new();
/// reader.read(&bytes[..5], &mut frames).unwrap(); // half a frame: nothing yet
/// assert!(frames.is_empty());
/// reader.read(&bytes[5..], &mut frames).unwrap();
/// assert_eq!(frames, [Frame::Heartbeat(0), Frame::Heartbeat(0)]);
/// ```
#[derive(Debug)]
pub struct FrameReader {
    pending: Vec<u8>,
    /// `pending` holds a whole frame that was handed out by [`FrameReader::next_raw`].
    pending_done: bool,
    frame_max: u32,
}

/// One frame, checked for size and end octet but not decoded; the payload is borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawFrame<'a> {
    /// A protocol header: the four bytes after `AMQP`.
    ProtocolHeader([u8; 4]),
    /// A method frame: class id, method id and arguments.
    Method(ChannelId, &'a [u8]),
    /// A content header frame.
    Header(ChannelId, &'a [u8]),
    /// A content body frame.
    Body(ChannelId, &'a [u8]),
    /// A heartbeat frame.
    Heartbeat(ChannelId),
}

impl RawFrame<'_> {
    /// The channel the frame travels on (0 for a protocol header).
    pub fn channel(&self) -> ChannelId {
        match *self {
            RawFrame::ProtocolHeader(_) => 0,
            RawFrame::Method(ch, _)
            | RawFrame::Header(ch, _)
            | RawFrame::Body(ch, _)
            | RawFrame::Heartbeat(ch) => ch,
        }
    }

    /// Decodes the payload: methods with `amq-protocol` (after the nesting check of their field
    /// tables), content headers with [`Properties`]; a body payload is copied.
    pub fn decode(self) -> Result<Frame, FrameError> {
        match self {
            RawFrame::ProtocolHeader(v) => Ok(Frame::ProtocolHeader(v)),
            RawFrame::Method(channel, payload) => decode_method(payload)
                .map(|m| Frame::Method(channel, m))
                .ok_or(FrameError::BadMethod(channel)),
            RawFrame::Header(channel, payload) => decode_content_header(payload)
                .map(|h| Frame::Header(channel, h))
                .map_err(|error| FrameError::BadHeader { channel, error }),
            RawFrame::Body(channel, payload) => Ok(Frame::Body(channel, payload.to_vec())),
            RawFrame::Heartbeat(channel) => Ok(Frame::Heartbeat(channel)),
        }
    }
}

/// Decodes a method payload (class id, method id, arguments) that must be consumed entirely.
///
/// Returns `None` for an unknown or malformed method, and for one whose field tables nest deeper
/// than [`crate::amqp::properties::MAX_NESTING`].
pub fn decode_method(payload: &[u8]) -> Option<AMQPClass> {
    if !method_tables_are_shallow(payload) {
        return None;
    }
    match parse_class(payload) {
        Ok(([], method)) => Some(method),
        _ => None,
    }
}

impl FrameReader {
    /// A reader that accepts frames of at most `frame_max` bytes, framing included.
    pub fn new(frame_max: u32) -> Self {
        FrameReader {
            pending: Vec::new(),
            pending_done: false,
            frame_max,
        }
    }

    /// Changes the size limit, e.g. once `connection.tune-ok` has settled it.
    pub fn set_frame_max(&mut self, frame_max: u32) {
        self.frame_max = frame_max;
    }

    /// The size limit in force.
    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }

    /// Bytes of an incomplete frame held back for the next [`FrameReader::read`].
    pub fn buffered(&self) -> usize {
        if self.pending_done {
            0
        } else {
            self.pending.len()
        }
    }

    /// Takes the next whole frame from the held-back bytes and `input`, advancing `input` past
    /// what it used; `Ok(None)` once `input` is used up (a trailing partial frame is kept).
    ///
    /// The frame size is checked against `frame_max` as soon as the 7-byte header is there, before
    /// any payload is buffered. A frame that lies wholly in `input` is borrowed from it, not copied.
    /// On an error the stream cannot be resumed; close the connection with
    /// [`FrameError::reply_code`].
    ///
    /// ```
    /// use nuropb_proto::amqp::frame::{write_heartbeat, FrameReader, RawFrame};
    ///
    /// let mut bytes = Vec::new();
    /// write_heartbeat(&mut bytes);
    /// let mut reader = FrameReader::new(4096);
    /// let mut input = &bytes[..];
    /// assert_eq!(reader.next_raw(&mut input), Ok(Some(RawFrame::Heartbeat(0))));
    /// assert_eq!(reader.next_raw(&mut input), Ok(None));
    /// ```
    pub fn next_raw<'s, 'i, 'o>(
        &'s mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<RawFrame<'o>>, FrameError>
    where
        's: 'o,
        'i: 'o,
    {
        if self.pending_done {
            self.pending.clear();
            self.pending_done = false;
        }
        if !self.pending.is_empty() {
            // Complete the frame held back last time, taking no more input than it needs.
            loop {
                let want = match frame_len(&self.pending, self.frame_max)? {
                    Length::Known(n) | Length::NeedHeader(n) => n,
                };
                let take = want.saturating_sub(self.pending.len()).min(input.len());
                self.pending.extend_from_slice(&input[..take]);
                *input = &input[take..];
                match frame_len(&self.pending, self.frame_max)? {
                    Length::Known(n) if self.pending.len() == n => {
                        self.pending_done = true;
                        return raw_frame(&self.pending).map(Some);
                    }
                    _ if input.is_empty() => return Ok(None),
                    _ => {}
                }
            }
        }
        if input.is_empty() {
            return Ok(None);
        }
        let whole: &'i [u8] = input;
        match frame_len(whole, self.frame_max)? {
            Length::Known(n) if whole.len() >= n => {
                let (frame, rest) = whole.split_at(n);
                *input = rest;
                raw_frame(frame).map(Some)
            }
            _ => {
                self.pending.extend_from_slice(whole);
                *input = &[];
                Ok(None)
            }
        }
    }

    /// Appends to `out` every frame completed by `input`, and keeps a trailing partial frame.
    ///
    /// On an error, the frames before the bad one are in `out`; the stream cannot be resumed and
    /// the connection should be closed with [`FrameError::reply_code`].
    pub fn read(&mut self, mut input: &[u8], out: &mut Vec<Frame>) -> Result<(), FrameError> {
        while let Some(raw) = self.next_raw(&mut input)? {
            out.push(raw.decode()?);
        }
        Ok(())
    }
}

enum Length {
    /// The whole frame is this long.
    Known(usize),
    /// At least this many bytes are needed to know.
    NeedHeader(usize),
}

/// The length of the frame that starts `bytes`, once its header is there; checked against `frame_max`.
fn frame_len(bytes: &[u8], frame_max: u32) -> Result<Length, FrameError> {
    match bytes.first() {
        None => Ok(Length::NeedHeader(1)),
        Some(b'A') => Ok(Length::Known(PROTOCOL_HEADER.len())),
        Some(_) => {
            let Some(size) = bytes.get(3..7) else {
                return Ok(Length::NeedHeader(7));
            };
            let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as u64;
            let total = size + FRAME_OVERHEAD as u64;
            if total > frame_max as u64 {
                return Err(FrameError::TooLarge {
                    size: total,
                    frame_max,
                });
            }
            Ok(Length::Known(total as usize))
        }
    }
}

/// Splits one complete frame (its length already checked) into type, channel and payload.
fn raw_frame(frame: &[u8]) -> Result<RawFrame<'_>, FrameError> {
    if frame[0] == b'A' {
        return match frame {
            [b'A', b'M', b'Q', b'P', a, b, c, d] => Ok(RawFrame::ProtocolHeader([*a, *b, *c, *d])),
            _ => Err(FrameError::BadProtocolHeader),
        };
    }
    let channel = u16::from_be_bytes([frame[1], frame[2]]);
    let (payload, end) = frame[7..].split_at(frame.len() - FRAME_OVERHEAD);
    if end != [FRAME_END] {
        return Err(FrameError::BadFrameEnd);
    }
    match frame[0] {
        FRAME_METHOD => Ok(RawFrame::Method(channel, payload)),
        FRAME_HEADER => Ok(RawFrame::Header(channel, payload)),
        FRAME_BODY => Ok(RawFrame::Body(channel, payload)),
        FRAME_HEARTBEAT => Ok(RawFrame::Heartbeat(channel)),
        other => Err(FrameError::UnknownFrameType(other)),
    }
}

/// Whether every field table in a method payload nests within the limit.
///
/// Only the methods of AMQP 0-9-1 that carry a table are looked at; a payload too short to reach
/// its table passes here and fails in the parser.
fn method_tables_are_shallow(payload: &[u8]) -> bool {
    let Some((ids, mut args)) = payload.split_first_chunk::<4>() else {
        return true;
    };
    let class = u16::from_be_bytes([ids[0], ids[1]]);
    let method = u16::from_be_bytes([ids[2], ids[3]]);
    // What precedes the table: fixed octets, short strings, then maybe a bit octet.
    let (fixed, shorts, bits) = match (class, method) {
        (10, 10) => (2, 0, 0),            // connection.start: version major, minor
        (10, 11) => (0, 0, 0),            // connection.start-ok: client properties first
        (40, 10) => (2, 2, 1),            // exchange.declare
        (40, 30) | (40, 40) => (2, 3, 1), // exchange.bind / unbind
        (50, 10) => (2, 1, 1),            // queue.declare
        (50, 20) => (2, 3, 1),            // queue.bind
        (50, 50) => (2, 3, 0),            // queue.unbind has no bits
        (60, 20) => (2, 2, 1),            // basic.consume
        _ => return true,
    };
    let Some(rest) = args.get(fixed..) else {
        return true;
    };
    args = rest;
    for _ in 0..shorts {
        let Some((&len, rest)) = args.split_first() else {
            return true;
        };
        let Some(rest) = rest.get(len as usize..) else {
            return true;
        };
        args = rest;
    }
    let Some(rest) = args.get(bits..) else {
        return true;
    };
    let Some((len, rest)) = rest.split_first_chunk::<4>() else {
        return true;
    };
    let Some(table) = rest.get(..u32::from_be_bytes(*len) as usize) else {
        return true;
    };
    // Refuse anything the checker cannot walk: it reads the same value types as the parser.
    check_table_nesting(table).is_ok()
}

pub(crate) fn decode_content_header(payload: &[u8]) -> Result<ContentHeader, PropertiesError> {
    let (fixed, props) = payload
        .split_first_chunk::<12>()
        .ok_or(PropertiesError::Malformed)?;
    let class_id = u16::from_be_bytes([fixed[0], fixed[1]]);
    // fixed[2..4] is the unused weight field.
    let mut size = [0; 8];
    size.copy_from_slice(&fixed[4..12]);
    Ok(ContentHeader {
        class_id,
        body_size: u64::from_be_bytes(size),
        properties: Properties::decode(props)?,
    })
}

/// Appends the AMQP 0-9-1 protocol header.
pub fn write_protocol_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&PROTOCOL_HEADER);
}

/// Appends a heartbeat frame (channel 0).
pub fn write_heartbeat(out: &mut Vec<u8>) {
    out.extend_from_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

/// Appends a method frame.
pub fn write_method(out: &mut Vec<u8>, channel: ChannelId, method: &AMQPClass) {
    let start = begin_frame(out, FRAME_METHOD, channel);
    let buf = std::mem::take(out);
    *out = match gen_class(method)(WriteContext::from(buf)) {
        Ok(ctx) => ctx.write,
        // A Vec grows on demand; amq-protocol's generators have no other failure.
        Err(e) => unreachable!("serializing into a Vec failed: {:?}", e as GenError),
    };
    end_frame(out, start);
}

/// Appends a content header frame for `body`, then the body split into frames of at most
/// `frame_max - 8` bytes (no body frame for an empty body).
///
/// `frame_max` must be at least [`MIN_FRAME_MAX`].
pub fn write_content(
    out: &mut Vec<u8>,
    channel: ChannelId,
    class_id: u16,
    properties: &Properties,
    body: &[u8],
    frame_max: u32,
) {
    write_content_with(
        out,
        channel,
        class_id,
        |out| properties.encode(out),
        body,
        frame_max,
    );
}

/// As [`write_content`], with the properties already encoded (flag word and property list, as
/// [`Properties::encode`] or [`crate::amqp::PropertiesRef::encode`] write them).
pub fn write_content_raw(
    out: &mut Vec<u8>,
    channel: ChannelId,
    class_id: u16,
    properties: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    out.reserve(FRAME_OVERHEAD * 2 + 12 + properties.len() + body.len());
    write_content_with(
        out,
        channel,
        class_id,
        |out| out.extend_from_slice(properties),
        body,
        frame_max,
    );
}

fn write_content_with(
    out: &mut Vec<u8>,
    channel: ChannelId,
    class_id: u16,
    properties: impl FnOnce(&mut Vec<u8>),
    body: &[u8],
    frame_max: u32,
) {
    let start = begin_frame(out, FRAME_HEADER, channel);
    out.extend_from_slice(&class_id.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    properties(out);
    end_frame(out, start);
    let chunk = (frame_max.max(MIN_FRAME_MAX) as usize) - FRAME_OVERHEAD;
    for part in body.chunks(chunk) {
        out.push(FRAME_BODY);
        out.extend_from_slice(&channel.to_be_bytes());
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
        out.push(FRAME_END);
    }
}

/// The class and method ids that start a method frame's payload; `None` when it is shorter than
/// four bytes.
///
/// ```
/// use nuropb_proto::amqp::frame::method_ids;
/// assert_eq!(method_ids(&[0, 60, 0, 80, 1, 2]), Some((60, 80))); // basic.ack
/// assert_eq!(method_ids(&[0, 60]), None);
/// ```
pub fn method_ids(payload: &[u8]) -> Option<(u16, u16)> {
    let (ids, _) = payload.split_first_chunk::<4>()?;
    Some((
        u16::from_be_bytes([ids[0], ids[1]]),
        u16::from_be_bytes([ids[2], ids[3]]),
    ))
}

/// Writes type, channel and a size placeholder; returns where the frame starts.
fn begin_frame(out: &mut Vec<u8>, kind: u8, channel: ChannelId) -> usize {
    let start = out.len();
    out.push(kind);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    start
}

/// Fills in the size of the frame begun at `start` and appends the end octet.
fn end_frame(out: &mut Vec<u8>, start: usize) {
    let size = (out.len() - start - 7) as u32;
    out[start + 3..start + 7].copy_from_slice(&size.to_be_bytes());
    out.push(FRAME_END);
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::basic;

    fn publish() -> AMQPClass {
        AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "nuropb-rpc-exchange".into(),
            routing_key: "svc".into(),
            mandatory: true,
            immediate: false,
        }))
    }

    #[test]
    fn a_message_reads_back_at_every_split_point() {
        let props = Properties {
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        let body = vec![7u8; 10_000];
        let mut bytes = Vec::new();
        write_method(&mut bytes, 1, &publish());
        write_content(&mut bytes, 1, 60, &props, &body, 4096);
        let mut whole = Vec::new();
        FrameReader::new(4096).read(&bytes, &mut whole).unwrap();
        assert_eq!(whole.len(), 2 + 3, "method, header, three body frames");
        for split in 0..bytes.len() {
            let mut reader = FrameReader::new(4096);
            let mut frames = Vec::new();
            reader.read(&bytes[..split], &mut frames).unwrap();
            reader.read(&bytes[split..], &mut frames).unwrap();
            assert_eq!(frames, whole, "split at {split}");
            assert_eq!(reader.buffered(), 0);
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header() {
        let mut reader = FrameReader::new(4096);
        let header = [FRAME_BODY, 0, 1, 0xff, 0xff, 0xff, 0xff];
        let err = reader.read(&header, &mut Vec::new()).unwrap_err();
        assert_eq!(
            err,
            FrameError::TooLarge {
                size: 0xffff_ffff + 8,
                frame_max: 4096
            }
        );
        assert_eq!(err.reply_code(), 501);
    }

    #[test]
    fn bad_frame_end_and_unknown_type_are_errors() {
        let mut bytes = Vec::new();
        write_heartbeat(&mut bytes);
        *bytes.last_mut().unwrap() = 0;
        assert_eq!(
            FrameReader::new(4096).read(&bytes, &mut Vec::new()),
            Err(FrameError::BadFrameEnd)
        );
        let unknown = [9, 0, 0, 0, 0, 0, 0, FRAME_END];
        assert_eq!(
            FrameReader::new(4096).read(&unknown, &mut Vec::new()),
            Err(FrameError::UnknownFrameType(9))
        );
    }
}
