//! Hand-written codecs for the methods on the hot path: `basic.deliver` in, and `basic.publish`,
//! `basic.ack`, `basic.nack`, `basic.reject` out.
//!
//! `amq-protocol`'s generated codecs go through nom combinators and build a flag map with a
//! `String` per bit; these do the same job with a few bounds checks. Each is tested against the
//! generated codec for equal bytes (out) or equal values (in).

use amq_protocol::types::{ChannelId, ShortString};

/// Class and method ids.
pub(crate) const BASIC: u16 = 60;
pub(crate) const BASIC_PUBLISH: u16 = 40;
pub(crate) const BASIC_DELIVER: u16 = 60;
const BASIC_ACK: u16 = 80;
const BASIC_REJECT: u16 = 90;
const BASIC_NACK: u16 = 120;

const FRAME_METHOD: u8 = 1;
const FRAME_END: u8 = 0xCE;

/// The arguments of `basic.deliver`.
#[derive(Debug, PartialEq)]
pub(crate) struct Deliver {
    pub(crate) consumer_tag: ShortString,
    pub(crate) delivery_tag: u64,
    pub(crate) redelivered: bool,
    pub(crate) exchange: ShortString,
    pub(crate) routing_key: ShortString,
}

/// Parses the arguments of `basic.deliver` (the payload after the four id octets), which must be
/// consumed entirely. `None` when malformed (including short strings that are not UTF-8).
pub(crate) fn parse_deliver(mut args: &[u8]) -> Option<Deliver> {
    let consumer_tag = short_string(&mut args)?;
    let (tag, rest) = args.split_first_chunk::<8>()?;
    let (&bits, mut rest) = rest.split_first()?;
    let exchange = short_string(&mut rest)?;
    let routing_key = short_string(&mut rest)?;
    if !rest.is_empty() {
        return None;
    }
    Some(Deliver {
        consumer_tag,
        delivery_tag: u64::from_be_bytes(*tag),
        redelivered: bits & 1 != 0,
        exchange,
        routing_key,
    })
}

fn short_string(input: &mut &[u8]) -> Option<ShortString> {
    let (&len, rest) = input.split_first()?;
    let bytes = rest.get(..len as usize)?;
    *input = &rest[len as usize..];
    let s = std::str::from_utf8(bytes).ok()?;
    // At most 255 bytes by construction, so this cannot fail.
    ShortString::try_new(s).ok()
}

/// Appends a `basic.publish` method frame. Both strings must be at most 255 bytes (checked by the
/// caller).
pub(crate) fn write_publish(
    out: &mut Vec<u8>,
    channel: ChannelId,
    exchange: &str,
    routing_key: &str,
    mandatory: bool,
    immediate: bool,
) {
    let size = 4 + 2 + 1 + exchange.len() + 1 + routing_key.len() + 1;
    out.reserve(size + 8);
    begin(out, channel, size);
    ids(out, BASIC, BASIC_PUBLISH);
    out.extend_from_slice(&[0, 0]); // reserved ticket
    put_short(out, exchange);
    put_short(out, routing_key);
    out.push(u8::from(mandatory) | u8::from(immediate) << 1);
    out.push(FRAME_END);
}

/// Appends a `basic.ack` method frame.
pub(crate) fn write_ack(out: &mut Vec<u8>, channel: ChannelId, delivery_tag: u64, multiple: bool) {
    write_tag_method(out, channel, BASIC_ACK, delivery_tag, u8::from(multiple));
}

/// Appends a `basic.nack` method frame.
pub(crate) fn write_nack(
    out: &mut Vec<u8>,
    channel: ChannelId,
    delivery_tag: u64,
    multiple: bool,
    requeue: bool,
) {
    let bits = u8::from(multiple) | u8::from(requeue) << 1;
    write_tag_method(out, channel, BASIC_NACK, delivery_tag, bits);
}

/// Appends a `basic.reject` method frame.
pub(crate) fn write_reject(
    out: &mut Vec<u8>,
    channel: ChannelId,
    delivery_tag: u64,
    requeue: bool,
) {
    write_tag_method(out, channel, BASIC_REJECT, delivery_tag, u8::from(requeue));
}

fn write_tag_method(out: &mut Vec<u8>, channel: ChannelId, method: u16, tag: u64, bits: u8) {
    begin(out, channel, 4 + 8 + 1);
    ids(out, BASIC, method);
    out.extend_from_slice(&tag.to_be_bytes());
    out.push(bits);
    out.push(FRAME_END);
}

fn begin(out: &mut Vec<u8>, channel: ChannelId, size: usize) {
    out.push(FRAME_METHOD);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(size as u32).to_be_bytes());
}

fn ids(out: &mut Vec<u8>, class: u16, method: u16) {
    out.extend_from_slice(&class.to_be_bytes());
    out.extend_from_slice(&method.to_be_bytes());
}

fn put_short(out: &mut Vec<u8>, s: &str) {
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amqp::frame::{Frame, FrameReader, method_ids, write_method};
    use amq_protocol::protocol::{AMQPClass, basic};

    fn generated(channel: ChannelId, method: basic::AMQPMethod) -> Vec<u8> {
        let mut out = Vec::new();
        write_method(&mut out, channel, &AMQPClass::Basic(method));
        out
    }

    #[test]
    fn publish_matches_the_generated_codec() {
        for (mandatory, immediate) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut ours = Vec::new();
            write_publish(
                &mut ours,
                7,
                "nuropb-rpc-exchange",
                "svc",
                mandatory,
                immediate,
            );
            let theirs = generated(
                7,
                basic::AMQPMethod::Publish(basic::Publish {
                    exchange: "nuropb-rpc-exchange".into(),
                    routing_key: "svc".into(),
                    mandatory,
                    immediate,
                }),
            );
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn ack_nack_reject_match_the_generated_codec() {
        for (a, b) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut ours = Vec::new();
            write_ack(&mut ours, 3, 0x0102_0304_0506_0708, a);
            write_nack(&mut ours, 3, 42, a, b);
            write_reject(&mut ours, 3, 43, b);
            let mut theirs = generated(
                3,
                basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: 0x0102_0304_0506_0708,
                    multiple: a,
                }),
            );
            theirs.extend(generated(
                3,
                basic::AMQPMethod::Nack(basic::Nack {
                    delivery_tag: 42,
                    multiple: a,
                    requeue: b,
                }),
            ));
            theirs.extend(generated(
                3,
                basic::AMQPMethod::Reject(basic::Reject {
                    delivery_tag: 43,
                    requeue: b,
                }),
            ));
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn deliver_parses_like_the_generated_codec() {
        let deliver = basic::Deliver {
            consumer_tag: "ctag1.f7745e5eb03d431fa4a6727df2213fca".into(),
            delivery_tag: 99,
            redelivered: true,
            exchange: "nuropb-rpc-exchange".into(),
            routing_key: "research-svc".into(),
        };
        let bytes = generated(1, basic::AMQPMethod::Deliver(deliver.clone()));
        let payload = &bytes[7..bytes.len() - 1];
        assert_eq!(method_ids(payload), Some((BASIC, BASIC_DELIVER)));
        let ours = parse_deliver(&payload[4..]).unwrap();
        assert_eq!(ours.consumer_tag, deliver.consumer_tag);
        assert_eq!(ours.delivery_tag, 99);
        assert!(ours.redelivered);
        assert_eq!(ours.exchange, deliver.exchange);
        assert_eq!(ours.routing_key, deliver.routing_key);
        // Every truncation and any trailing byte is refused, as by the generated parser.
        for cut in 4..payload.len() {
            assert_eq!(parse_deliver(&payload[4..cut]), None, "cut at {cut}");
        }
        let mut long = payload[4..].to_vec();
        long.push(0);
        assert_eq!(parse_deliver(&long), None);
        let mut frames = Vec::new();
        FrameReader::new(4096).read(&bytes, &mut frames).unwrap();
        assert!(
            matches!(&frames[0], Frame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Deliver(d))) if *d == deliver)
        );
    }

    #[test]
    fn non_utf8_short_strings_are_refused() {
        let mut args = vec![1, 0xff];
        args.extend_from_slice(&[0; 9]);
        args.extend_from_slice(&[0, 0]);
        assert_eq!(parse_deliver(&args), None);
    }
}
