//! Writing frames, and the hand-written codecs of the hot path.
//!
//! Everything goes through `nuropb_proto::amqp::frame`, except three methods that every message
//! crosses — `basic.publish` and `basic.ack` in, `basic.deliver` out — which are parsed and written
//! here without `amq-protocol`'s allocations. Content goes out with
//! `nuropb_proto::amqp::frame::write_content_raw`, from the publisher's own property bytes
//! (RabbitMQ forwards them unchanged). Each is tested for equal bytes or values against the
//! generic codec.

use amq_protocol::protocol::AMQPClass;
use amq_protocol::types::ShortString;
use nuropb_proto::amqp::frame::{FRAME_END, write_method};

const FRAME_METHOD: u8 = 1;
/// The `basic` class, whose content every message is.
pub(crate) const BASIC: u16 = 60;

/// Appends a method frame.
pub(crate) fn method(out: &mut Vec<u8>, channel: u16, m: &AMQPClass) {
    write_method(out, channel, m);
}

/// A short string from a string that may be longer than 255 bytes: cut at a character boundary.
pub(crate) fn short(s: &str) -> ShortString {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::try_new(&s[..end]).unwrap_or_default()
}

/// A reply text as RabbitMQ sends it: longer than 255 bytes, it keeps 252 and appends `...`.
pub(crate) fn reply_text(text: &str) -> ShortString {
    if text.len() <= 255 {
        return short(text);
    }
    let mut end = 252;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    short(&format!("{}...", &text[..end]))
}

fn push_short(out: &mut Vec<u8>, s: &str) {
    let s = &s.as_bytes()[..s.len().min(255)];
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

/// Appends a `basic.deliver` method frame.
pub(crate) fn write_deliver(
    out: &mut Vec<u8>,
    channel: u16,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
) {
    let start = out.len();
    out.push(FRAME_METHOD);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&[0, 60, 0, 60]);
    push_short(out, consumer_tag);
    out.extend_from_slice(&delivery_tag.to_be_bytes());
    out.push(redelivered as u8);
    push_short(out, exchange);
    push_short(out, routing_key);
    let size = (out.len() - start - 7) as u32;
    out[start + 3..start + 7].copy_from_slice(&size.to_be_bytes());
    out.push(FRAME_END);
}

fn take_short<'a>(input: &mut &'a [u8]) -> Option<&'a str> {
    let (&len, rest) = input.split_first()?;
    let bytes = rest.get(..len as usize)?;
    *input = &rest[len as usize..];
    std::str::from_utf8(bytes).ok()
}

/// `basic.publish` arguments: exchange, routing key, mandatory, immediate. `None` when malformed
/// (the generic decoder then reports the error).
pub(crate) fn parse_publish(payload: &[u8]) -> Option<(&str, &str, bool, bool)> {
    let mut args = payload.get(4..)?;
    let (_ticket, rest) = args.split_first_chunk::<2>()?;
    args = rest;
    let exchange = take_short(&mut args)?;
    let routing_key = take_short(&mut args)?;
    let (&bits, rest) = args.split_first()?;
    if !rest.is_empty() {
        return None;
    }
    Some((exchange, routing_key, bits & 1 != 0, bits & 2 != 0))
}

/// `basic.ack` arguments: delivery tag, multiple.
pub(crate) fn parse_ack(payload: &[u8]) -> Option<(u64, bool)> {
    let args = payload.get(4..)?;
    let (tag, rest) = args.split_first_chunk::<8>()?;
    match rest {
        [bits] => Some((u64::from_be_bytes(*tag), bits & 1 != 0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::protocol::basic;
    use nuropb_proto::amqp::Frame;
    use nuropb_proto::amqp::frame::FrameReader;

    #[test]
    fn deliver_matches_the_generic_codec() {
        let mut generic = Vec::new();
        let m = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
            consumer_tag: "amq.ctag-x".into(),
            delivery_tag: 0x0102_0304_0506_0708,
            redelivered: true,
            exchange: "nuropb-rpc-exchange".into(),
            routing_key: "svc".into(),
        }));
        method(&mut generic, 7, &m);
        let mut fast = Vec::new();
        write_deliver(
            &mut fast,
            7,
            "amq.ctag-x",
            0x0102_0304_0506_0708,
            true,
            "nuropb-rpc-exchange",
            "svc",
        );
        assert_eq!(fast, generic);
    }

    fn payload_of(m: &AMQPClass) -> Vec<u8> {
        let mut bytes = Vec::new();
        method(&mut bytes, 1, m);
        bytes[7..bytes.len() - 1].to_vec()
    }

    #[test]
    fn publish_and_ack_parse_as_the_generic_codec() {
        for (x, k, mandatory, immediate) in [("", "q", false, false), ("ex", "a.b", true, true)] {
            let m = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: x.into(),
                routing_key: k.into(),
                mandatory,
                immediate,
            }));
            assert_eq!(
                parse_publish(&payload_of(&m)),
                Some((x, k, mandatory, immediate))
            );
        }
        let m = AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
            delivery_tag: 42,
            multiple: true,
        }));
        assert_eq!(parse_ack(&payload_of(&m)), Some((42, true)));
        assert_eq!(parse_ack(&payload_of(&m)[..10]), None);
        // The reader agrees on what the bytes are.
        let mut bytes = Vec::new();
        method(&mut bytes, 1, &m);
        let mut frames = Vec::new();
        FrameReader::new(4096).read(&bytes, &mut frames).unwrap();
        assert_eq!(frames, [Frame::Method(1, m)]);
    }

    #[test]
    fn long_reply_texts_are_cut_like_rabbitmq() {
        let t = reply_text(&"é".repeat(200));
        assert!(t.as_str().len() <= 255);
        assert!(t.as_str().ends_with("..."));
        assert_eq!(reply_text("short").as_str(), "short");
    }
}
