//! Basic-class content properties, with a header table that keeps its order.
//!
//! `amq-protocol` keeps field tables in a `BTreeMap`, which writes keys in alphabetical order. NuroPb
//! peers write their five headers in a fixed order, and RabbitMQ forwards property bytes unchanged, so a
//! byte-exact peer needs a table that keeps insertion order. [`Properties`] is that: the fourteen
//! properties of the basic class, with [`Headers`] as an ordered list, encoded and decoded here with
//! `amq-protocol`'s value codecs.
//!
//! Decoding never panics and never recurses without bound: nested tables and arrays deeper than
//! [`MAX_NESTING`] are a [`PropertiesError`].

use amq_protocol::frame::{GenError, WriteContext};
use amq_protocol::types::generation::{gen_short_string, gen_value};
use amq_protocol::types::parsing::{parse_short_string, parse_value};
use amq_protocol::types::{AMQPValue, ShortString};

/// How deep field tables and arrays may nest inside a header value.
///
/// RabbitMQ's own `x-death` header nests three levels (table → array → table); this leaves room and
/// keeps recursive decoding far from the stack limit.
pub const MAX_NESTING: usize = 16;

/// A header field table that keeps its entries in insertion order.
///
/// ```
/// use nuropb_amqp::amqp::{AMQPValue, Headers};
///
/// let mut headers = Headers::default();
/// headers.insert("nuropb_type", AMQPValue::LongString("request".into()));
/// headers.insert("trace_id", AMQPValue::Void);
/// assert_eq!(headers.keys().collect::<Vec<_>>(), ["nuropb_type", "trace_id"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Headers(Vec<(ShortString, AMQPValue)>);

impl Headers {
    /// The value under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&AMQPValue> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    /// Sets `key` to `value`: in place when the key exists, appended otherwise.
    ///
    /// # Panics
    /// When `key` is longer than 255 bytes; use [`Headers::try_insert`] for keys from elsewhere.
    pub fn insert(&mut self, key: &str, value: AMQPValue) {
        self.try_insert(key, value)
            .expect("header key longer than 255 bytes");
    }

    /// Sets `key` to `value`, or fails when the key is longer than 255 bytes.
    pub fn try_insert(&mut self, key: &str, value: AMQPValue) -> Result<(), PropertiesError> {
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| k.as_str() == key) {
            slot.1 = value;
        } else {
            let key = ShortString::try_new(key).map_err(|_| PropertiesError::KeyTooLong)?;
            self.0.push((key, value));
        }
        Ok(())
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<AMQPValue> {
        let at = self.0.iter().position(|(k, _)| k.as_str() == key)?;
        Some(self.0.remove(at).1)
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AMQPValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(ShortString, AMQPValue)> for Headers {
    fn from_iter<T: IntoIterator<Item = (ShortString, AMQPValue)>>(iter: T) -> Self {
        let mut headers = Headers::default();
        for (k, v) in iter {
            if let Some(slot) = headers.0.iter_mut().find(|(key, _)| *key == k) {
                slot.1 = v;
            } else {
                headers.0.push((k, v));
            }
        }
        headers
    }
}

/// The content properties of a basic-class message (AMQP 0-9-1 §4.2.6, the `basic` class).
///
/// Every property is optional; an absent property is not written, a present one sets its flag bit.
/// ```
/// use nuropb_amqp::amqp::Properties;
///
/// let props = Properties { content_type: Some("application/json".into()), ..Default::default() };
/// let mut bytes = Vec::new();
/// props.encode(&mut bytes);
/// assert_eq!(Properties::decode(&bytes).unwrap(), props);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Properties {
    /// MIME content type.
    pub content_type: Option<ShortString>,
    /// MIME content encoding.
    pub content_encoding: Option<ShortString>,
    /// Application headers, in order.
    pub headers: Option<Headers>,
    /// 1 = transient, 2 = persistent.
    pub delivery_mode: Option<u8>,
    /// Priority, 0 to 9.
    pub priority: Option<u8>,
    /// Application correlation identifier.
    pub correlation_id: Option<ShortString>,
    /// Address to reply to.
    pub reply_to: Option<ShortString>,
    /// Message expiration: milliseconds as a decimal string (RabbitMQ's convention).
    pub expiration: Option<ShortString>,
    /// Application message identifier.
    pub message_id: Option<ShortString>,
    /// Message timestamp, seconds since the epoch.
    pub timestamp: Option<u64>,
    /// Message type name (`type` on the wire).
    pub kind: Option<ShortString>,
    /// Creating user id, validated by RabbitMQ.
    pub user_id: Option<ShortString>,
    /// Creating application id.
    pub app_id: Option<ShortString>,
    /// Deprecated cluster id.
    pub cluster_id: Option<ShortString>,
}

/// Why a property list could not be decoded or encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PropertiesError {
    /// The bytes end before the properties their flags announce.
    #[error("content properties are truncated or malformed")]
    Malformed,
    /// The flag word announces a continuation, which the basic class never has.
    #[error("content property flags have the continuation bit set")]
    Continuation,
    /// Bytes remain after the last announced property.
    #[error("{0} bytes after the content properties")]
    TrailingBytes(usize),
    /// Tables or arrays nest deeper than [`MAX_NESTING`].
    #[error("header tables nest deeper than {MAX_NESTING} levels")]
    TooDeep,
    /// A header key is longer than 255 bytes.
    #[error("header key longer than 255 bytes")]
    KeyTooLong,
}

const CONTENT_TYPE: u16 = 1 << 15;
const CONTENT_ENCODING: u16 = 1 << 14;
const HEADERS: u16 = 1 << 13;
const DELIVERY_MODE: u16 = 1 << 12;
const PRIORITY: u16 = 1 << 11;
const CORRELATION_ID: u16 = 1 << 10;
const REPLY_TO: u16 = 1 << 9;
const EXPIRATION: u16 = 1 << 8;
const MESSAGE_ID: u16 = 1 << 7;
const TIMESTAMP: u16 = 1 << 6;
const KIND: u16 = 1 << 5;
const USER_ID: u16 = 1 << 4;
const APP_ID: u16 = 1 << 3;
const CLUSTER_ID: u16 = 1 << 2;
const CONTINUATION: u16 = 1;

impl Properties {
    /// The property flag word: one bit per present property.
    pub fn flags(&self) -> u16 {
        let bit = |present: bool, bit: u16| if present { bit } else { 0 };
        bit(self.content_type.is_some(), CONTENT_TYPE)
            | bit(self.content_encoding.is_some(), CONTENT_ENCODING)
            | bit(self.headers.is_some(), HEADERS)
            | bit(self.delivery_mode.is_some(), DELIVERY_MODE)
            | bit(self.priority.is_some(), PRIORITY)
            | bit(self.correlation_id.is_some(), CORRELATION_ID)
            | bit(self.reply_to.is_some(), REPLY_TO)
            | bit(self.expiration.is_some(), EXPIRATION)
            | bit(self.message_id.is_some(), MESSAGE_ID)
            | bit(self.timestamp.is_some(), TIMESTAMP)
            | bit(self.kind.is_some(), KIND)
            | bit(self.user_id.is_some(), USER_ID)
            | bit(self.app_id.is_some(), APP_ID)
            | bit(self.cluster_id.is_some(), CLUSTER_ID)
    }

    /// Appends the flag word and the present properties, in wire order, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.flags().to_be_bytes());
        let short = |out: &mut Vec<u8>, s: &Option<ShortString>| {
            if let Some(s) = s {
                out.push(s.as_str().len() as u8);
                out.extend_from_slice(s.as_str().as_bytes());
            }
        };
        short(out, &self.content_type);
        short(out, &self.content_encoding);
        if let Some(headers) = &self.headers {
            encode_table(headers, out);
        }
        if let Some(mode) = self.delivery_mode {
            out.push(mode);
        }
        if let Some(priority) = self.priority {
            out.push(priority);
        }
        short(out, &self.correlation_id);
        short(out, &self.reply_to);
        short(out, &self.expiration);
        short(out, &self.message_id);
        if let Some(ts) = self.timestamp {
            out.extend_from_slice(&ts.to_be_bytes());
        }
        short(out, &self.kind);
        short(out, &self.user_id);
        short(out, &self.app_id);
        short(out, &self.cluster_id);
    }

    /// Decodes a flag word and property list that make up the whole of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Properties, PropertiesError> {
        let (flags, mut rest) = split_u16(bytes)?;
        if flags & CONTINUATION != 0 {
            return Err(PropertiesError::Continuation);
        }
        let mut props = Properties::default();
        let short = |rest: &mut &[u8], bit: u16| -> Result<Option<ShortString>, PropertiesError> {
            if flags & bit == 0 {
                return Ok(None);
            }
            let (r, s) = parse_short_string(*rest).map_err(|_| PropertiesError::Malformed)?;
            *rest = r;
            Ok(Some(s))
        };
        props.content_type = short(&mut rest, CONTENT_TYPE)?;
        props.content_encoding = short(&mut rest, CONTENT_ENCODING)?;
        if flags & HEADERS != 0 {
            let (headers, r) = decode_table(rest)?;
            props.headers = Some(headers);
            rest = r;
        }
        if flags & DELIVERY_MODE != 0 {
            let (&mode, r) = rest.split_first().ok_or(PropertiesError::Malformed)?;
            props.delivery_mode = Some(mode);
            rest = r;
        }
        if flags & PRIORITY != 0 {
            let (&priority, r) = rest.split_first().ok_or(PropertiesError::Malformed)?;
            props.priority = Some(priority);
            rest = r;
        }
        props.correlation_id = short(&mut rest, CORRELATION_ID)?;
        props.reply_to = short(&mut rest, REPLY_TO)?;
        props.expiration = short(&mut rest, EXPIRATION)?;
        props.message_id = short(&mut rest, MESSAGE_ID)?;
        if flags & TIMESTAMP != 0 {
            let (ts, r) = rest
                .split_first_chunk::<8>()
                .ok_or(PropertiesError::Malformed)?;
            props.timestamp = Some(u64::from_be_bytes(*ts));
            rest = r;
        }
        props.kind = short(&mut rest, KIND)?;
        props.user_id = short(&mut rest, USER_ID)?;
        props.app_id = short(&mut rest, APP_ID)?;
        props.cluster_id = short(&mut rest, CLUSTER_ID)?;
        if !rest.is_empty() {
            return Err(PropertiesError::TrailingBytes(rest.len()));
        }
        Ok(props)
    }
}

fn split_u16(bytes: &[u8]) -> Result<(u16, &[u8]), PropertiesError> {
    let (word, rest) = bytes
        .split_first_chunk::<2>()
        .ok_or(PropertiesError::Malformed)?;
    Ok((u16::from_be_bytes(*word), rest))
}

fn split_u32(bytes: &[u8]) -> Result<(u32, &[u8]), PropertiesError> {
    let (word, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or(PropertiesError::Malformed)?;
    Ok((u32::from_be_bytes(*word), rest))
}

/// Writes `headers` as a field table: its byte length, then each key and typed value in order.
fn encode_table(headers: &Headers, out: &mut Vec<u8>) {
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    for (key, value) in &headers.0 {
        let buf = std::mem::take(out);
        *out = write_with(buf, |ctx| {
            let ctx = gen_short_string(key.as_str())(ctx)?;
            gen_value(value)(ctx)
        });
    }
    let len = (out.len() - len_at - 4) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
}

/// Runs a cookie-factory serializer over a growable buffer, which cannot fail for lack of space.
fn write_with<F>(buf: Vec<u8>, f: F) -> Vec<u8>
where
    F: FnOnce(WriteContext<Vec<u8>>) -> Result<WriteContext<Vec<u8>>, GenError>,
{
    match f(WriteContext::from(buf)) {
        Ok(ctx) => ctx.write,
        // A Vec grows on demand; amq-protocol's value generators have no other failure.
        Err(e) => unreachable!("serializing into a Vec failed: {e:?}"),
    }
}

/// Reads a field table that starts `bytes`, keeping its order; returns the rest.
fn decode_table(bytes: &[u8]) -> Result<(Headers, &[u8]), PropertiesError> {
    let (len, rest) = split_u32(bytes)?;
    let len = len as usize;
    if rest.len() < len {
        return Err(PropertiesError::Malformed);
    }
    let (mut table, rest) = rest.split_at(len);
    check_nesting(table, 1)?;
    let mut headers = Headers::default();
    while !table.is_empty() {
        let (r, key) = parse_short_string(table).map_err(|_| PropertiesError::Malformed)?;
        let (r, value) = parse_value(r).map_err(|_| PropertiesError::Malformed)?;
        table = r;
        headers.0.push((key, value));
    }
    Ok((headers, rest))
}

/// Checks the content of a field table (entries, without the length prefix) for nesting deeper
/// than [`MAX_NESTING`] and for values the parser could not read, without recursing into
/// `amq-protocol`'s parser.
pub(crate) fn check_table_nesting(table: &[u8]) -> Result<(), PropertiesError> {
    check_nesting(table, 1)
}

/// Refuses tables whose nested tables and arrays go deeper than [`MAX_NESTING`], before the
/// recursive parser of `amq-protocol` sees them.
///
/// `table` is the content of a field table (entries without the length prefix) at `depth`.
fn check_nesting(table: &[u8], depth: usize) -> Result<(), PropertiesError> {
    if depth > MAX_NESTING {
        return Err(PropertiesError::TooDeep);
    }
    let mut rest = table;
    while !rest.is_empty() {
        let (&key_len, r) = rest.split_first().ok_or(PropertiesError::Malformed)?;
        rest = r
            .get(key_len as usize..)
            .ok_or(PropertiesError::Malformed)?;
        rest = skip_value(rest, depth)?;
    }
    Ok(())
}

/// Skips one typed value (type tag and value), checking nesting depth of tables and arrays within.
fn skip_value(bytes: &[u8], depth: usize) -> Result<&[u8], PropertiesError> {
    let (&tag, rest) = bytes.split_first().ok_or(PropertiesError::Malformed)?;
    let fixed = |n: usize| rest.get(n..).ok_or(PropertiesError::Malformed);
    match tag {
        b't' | b'b' | b'B' => fixed(1),
        b's' | b'U' | b'u' => fixed(2),
        b'I' | b'i' | b'f' => fixed(4),
        b'l' | b'L' | b'd' | b'T' => fixed(8),
        b'D' => fixed(5),
        b'V' => Ok(rest),
        b'S' | b'x' => {
            let (len, rest) = split_u32(rest)?;
            rest.get(len as usize..).ok_or(PropertiesError::Malformed)
        }
        b'F' => {
            let (len, rest) = split_u32(rest)?;
            let inner = rest.get(..len as usize).ok_or(PropertiesError::Malformed)?;
            check_nesting(inner, depth + 1)?;
            Ok(&rest[len as usize..])
        }
        b'A' => {
            let (len, rest) = split_u32(rest)?;
            let mut inner = rest.get(..len as usize).ok_or(PropertiesError::Malformed)?;
            if depth + 1 > MAX_NESTING {
                return Err(PropertiesError::TooDeep);
            }
            while !inner.is_empty() {
                inner = skip_value(inner, depth + 1)?;
            }
            Ok(&rest[len as usize..])
        }
        _ => Err(PropertiesError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nuropb_headers() -> Headers {
        let mut h = Headers::default();
        h.insert("nuropb_protocol", AMQPValue::LongString("0.1.1".into()));
        h.insert("nuropb_version", AMQPValue::LongString("0.1.8".into()));
        h.insert("nuropb_type", AMQPValue::LongString("event".into()));
        h.insert("trace_id", AMQPValue::Void);
        h.insert("encrypted", AMQPValue::LongString("".into()));
        h
    }

    #[test]
    fn header_order_survives_a_round_trip() {
        let props = Properties {
            content_type: Some("application/json".into()),
            headers: Some(nuropb_headers()),
            correlation_id: Some("abc".into()),
            reply_to: Some("".into()),
            ..Default::default()
        };
        assert_eq!(props.flags(), 0xa600);
        let mut bytes = Vec::new();
        props.encode(&mut bytes);
        let back = Properties::decode(&bytes).unwrap();
        assert_eq!(back, props);
        let keys: Vec<_> = back.headers.as_ref().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "nuropb_protocol",
                "nuropb_version",
                "nuropb_type",
                "trace_id",
                "encrypted"
            ]
        );
    }

    #[test]
    fn every_property_round_trips() {
        let props = Properties {
            content_type: Some("a".into()),
            content_encoding: Some("b".into()),
            headers: Some(Headers::default()),
            delivery_mode: Some(2),
            priority: Some(5),
            correlation_id: Some("c".into()),
            reply_to: Some("d".into()),
            expiration: Some("60000".into()),
            message_id: Some("e".into()),
            timestamp: Some(1_700_000_000),
            kind: Some("f".into()),
            user_id: Some("g".into()),
            app_id: Some("h".into()),
            cluster_id: Some("i".into()),
        };
        let mut bytes = Vec::new();
        props.encode(&mut bytes);
        assert_eq!(Properties::decode(&bytes).unwrap(), props);
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing() {
        // 10 000 nested tables: {"k": {"k": {...}}}
        let mut inner: Vec<u8> = Vec::new();
        for _ in 0..10_000 {
            let mut t = vec![1, b'k', b'F'];
            t.extend_from_slice(&(inner.len() as u32).to_be_bytes());
            t.extend_from_slice(&inner);
            inner = t;
        }
        let mut bytes = HEADERS.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&inner);
        assert_eq!(Properties::decode(&bytes), Err(PropertiesError::TooDeep));
    }

    #[test]
    fn truncation_and_trailing_bytes_are_errors() {
        let props = Properties {
            headers: Some(nuropb_headers()),
            ..Default::default()
        };
        let mut bytes = Vec::new();
        props.encode(&mut bytes);
        for cut in 0..bytes.len() {
            assert!(Properties::decode(&bytes[..cut]).is_err(), "prefix {cut}");
        }
        bytes.push(0);
        assert_eq!(
            Properties::decode(&bytes),
            Err(PropertiesError::TrailingBytes(1))
        );
    }
}
