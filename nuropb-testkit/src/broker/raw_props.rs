//! A property list taken apart into its properties' bytes, for rewriting one or two of them and
//! forwarding the rest exactly as they came.
//!
//! RabbitMQ checks only the structure of a property list: strings need not be UTF-8 and tables
//! may nest to any depth. When it rewrites a message (dead-lettering sets headers and drops the
//! expiration) everything else goes on unchanged, so the broker here rewrites at the byte level
//! too: [`RawProperties`] holds each property's bytes, [`entries`] a header table's entries with
//! their values still encoded. Both expect a list that [`props::facts`](super::props::facts)
//! accepted at publish.

use amq_protocol::types::AMQPValue;
use amq_protocol::types::generation::gen_value;
use nuropb_proto::amqp::Properties;
use nuropb_proto::amqp::properties::flag::HEADERS;

/// The fourteen properties' flag bits, in wire order.
const BITS: [u16; 14] = [
    1 << 15,
    1 << 14,
    1 << 13,
    1 << 12,
    1 << 11,
    1 << 10,
    1 << 9,
    1 << 8,
    1 << 7,
    1 << 6,
    1 << 5,
    1 << 4,
    1 << 3,
    1 << 2,
];

/// How each property is laid out, in wire order: a short string, a table, or fixed bytes.
#[derive(Clone, Copy)]
enum Layout {
    Short,
    Table,
    Fixed(usize),
}

const LAYOUT: [Layout; 14] = [
    Layout::Short,    // content_type
    Layout::Short,    // content_encoding
    Layout::Table,    // headers
    Layout::Fixed(1), // delivery_mode
    Layout::Fixed(1), // priority
    Layout::Short,    // correlation_id
    Layout::Short,    // reply_to
    Layout::Short,    // expiration
    Layout::Short,    // message_id
    Layout::Fixed(8), // timestamp
    Layout::Short,    // type
    Layout::Short,    // user_id
    Layout::Short,    // app_id
    Layout::Short,    // cluster_id
];

/// Each property's bytes as on the wire (a short string with its length octet, a table with its
/// length word), `None` where absent.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawProperties<'a> {
    parts: [Option<&'a [u8]>; 14],
}

impl<'a> RawProperties<'a> {
    /// Splits a property list; `None` when it is not well formed (never for one accepted at
    /// publish).
    pub(crate) fn split(bytes: &'a [u8]) -> Option<Self> {
        let (flags, mut rest) = bytes.split_first_chunk::<2>()?;
        let flags = u16::from_be_bytes(*flags);
        let mut raw = RawProperties::default();
        for (i, (&bit, layout)) in BITS.iter().zip(LAYOUT).enumerate() {
            if flags & bit == 0 {
                continue;
            }
            let len = match layout {
                Layout::Short => 1 + *rest.first()? as usize,
                Layout::Table => 4 + u32::from_be_bytes(*rest.split_first_chunk::<4>()?.0) as usize,
                Layout::Fixed(n) => n,
            };
            let (part, tail) = (rest.get(..len)?, rest.get(len..)?);
            raw.parts[i] = Some(part);
            rest = tail;
        }
        Some(raw)
    }

    /// The bytes of the property with flag `bit`.
    pub(crate) fn get(&self, bit: u16) -> Option<&'a [u8]> {
        self.parts[index(bit)]
    }

    /// Sets (or with `None` removes) the property with flag `bit` to `bytes`, laid out as the
    /// wire has it.
    pub(crate) fn set(&mut self, bit: u16, bytes: Option<&'a [u8]>) {
        self.parts[index(bit)] = bytes;
    }

    /// The property list: the flag word, then the present properties.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let flags = BITS
            .iter()
            .zip(&self.parts)
            .filter(|(_, p)| p.is_some())
            .fold(0u16, |f, (bit, _)| f | bit);
        let mut out = flags.to_be_bytes().to_vec();
        for part in self.parts.iter().flatten() {
            out.extend_from_slice(part);
        }
        out
    }
}

fn index(bit: u16) -> usize {
    15 - bit.trailing_zeros() as usize
}

/// The entries of a header table (its bytes after the length word): each key's bytes and its
/// value still encoded (type tag included), found by the length fields alone.
pub(crate) fn entries(mut table: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    while let Some((&key_len, rest)) = table.split_first() {
        let Some((key, rest)) = rest.split_at_checked(key_len as usize) else {
            break;
        };
        let Some(size) = value_size(rest) else { break };
        let (value, rest) = rest.split_at(size);
        out.push((key, value));
        table = rest;
    }
    out
}

/// The size of an encoded value (tag included) that starts `bytes`.
fn value_size(bytes: &[u8]) -> Option<usize> {
    let (&tag, rest) = bytes.split_first()?;
    let size = match tag {
        b't' | b'b' | b'B' => 1,
        b's' | b'U' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'l' | b'L' | b'd' | b'T' => 8,
        b'D' => 5,
        b'V' => 0,
        b'S' | b'x' | b'F' | b'A' => {
            4 + u32::from_be_bytes(*rest.split_first_chunk::<4>()?.0) as usize
        }
        _ => return None,
    };
    (rest.len() >= size).then_some(1 + size)
}

/// Decodes one encoded value, if the client's decoder can (not nested too deep).
pub(crate) fn decode_value(value: &[u8]) -> Option<AMQPValue> {
    let mut list = HEADERS.to_be_bytes().to_vec();
    list.extend_from_slice(&(value.len() as u32 + 2).to_be_bytes());
    list.extend_from_slice(&[1, b'v']);
    list.extend_from_slice(value);
    let (props, _) = Properties::salvage(&list);
    props.headers?.get("v").cloned()
}

/// Encodes one value, type tag included.
pub(crate) fn encode_value(value: &AMQPValue) -> Vec<u8> {
    let ctx = amq_protocol::frame::WriteContext::from(Vec::new());
    match gen_value(value)(ctx) {
        Ok(ctx) => ctx.write,
        // A Vec grows on demand; amq-protocol's generators have no other failure.
        Err(e) => unreachable!("serializing into a Vec failed: {e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuropb_proto::amqp::Headers;
    use nuropb_proto::amqp::properties::flag::*;

    #[test]
    fn splits_and_joins_every_property() {
        let mut h = Headers::default();
        h.insert("a", AMQPValue::LongString("x".into()));
        h.insert("b", AMQPValue::LongLongInt(-1));
        let props = Properties {
            content_type: Some("t".into()),
            headers: Some(h),
            delivery_mode: Some(2),
            correlation_id: Some("c".into()),
            expiration: Some("60".into()),
            timestamp: Some(5),
            cluster_id: Some("z".into()),
            ..Properties::default()
        };
        let mut bytes = Vec::new();
        props.encode(&mut bytes);
        let mut raw = RawProperties::split(&bytes).unwrap();
        assert_eq!(raw.encode(), bytes);
        assert_eq!(raw.get(EXPIRATION), Some(&b"\x0260"[..]));
        assert_eq!(raw.get(DELIVERY_MODE), Some(&[2u8][..]));
        let table = raw.get(HEADERS).unwrap();
        let found = entries(&table[4..]);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, b"a");
        assert_eq!(decode_value(found[1].1), Some(AMQPValue::LongLongInt(-1)));
        assert_eq!(encode_value(&AMQPValue::LongLongInt(-1)), found[1].1);
        raw.set(EXPIRATION, None);
        let without = Properties::decode(&raw.encode()).unwrap();
        assert_eq!(
            without,
            Properties {
                expiration: None,
                ..props
            }
        );
    }

    #[test]
    fn bytes_the_client_cannot_read_pass_through() {
        // A correlation id that is not UTF-8 and a key that is not either.
        let mut bytes = (HEADERS | CORRELATION_ID).to_be_bytes().to_vec();
        let table = [2, 0xff, 0xfe, b'V'];
        bytes.extend_from_slice(&(table.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&table);
        bytes.extend_from_slice(&[2, 0xc3, 0x28]);
        let raw = RawProperties::split(&bytes).unwrap();
        assert_eq!(raw.encode(), bytes);
        assert_eq!(
            entries(&raw.get(HEADERS).unwrap()[4..]),
            [(&[0xff, 0xfe][..], &b"V"[..])]
        );
    }
}
