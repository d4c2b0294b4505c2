//! Basic-class content properties, with a header table that keeps its order.
//!
//! `amq-protocol` keeps field tables in a `BTreeMap`, which writes keys in alphabetical order. NuroPb
//! peers write their five headers in a fixed order, and RabbitMQ forwards property bytes unchanged, so a
//! byte-exact peer needs a table that keeps insertion order. [`Properties`] is that: the fourteen
//! properties of the basic class, with [`Headers`] as an ordered list, encoded and decoded here with
//! `amq-protocol`'s value codecs.
//!
//! Decoding never panics and never recurses without bound: nested tables and arrays deeper than
//! [`MAX_NESTING`] are a [`PropertiesError`]. It is hand-written (one pass, one copy per string)
//! because it runs for every message received; values decode exactly as `amq-protocol`'s parser
//! decodes them (RabbitMQ's type tags), which a test checks.

use amq_protocol::frame::{GenError, WriteContext};
use amq_protocol::types::generation::{gen_short_string, gen_value};
use amq_protocol::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};

/// How deep field tables and arrays may nest inside a header value.
///
/// RabbitMQ's own `x-death` header nests three levels (table → array → table); this leaves room and
/// keeps recursive decoding far from the stack limit.
pub const MAX_NESTING: usize = 16;

/// A header field table that keeps its entries in insertion order.
///
/// ```
/// use nuropb_proto::amqp::{AMQPValue, Headers};
///
/// let mut headers = Headers::default();
/// headers.insert("nuropb_type", AMQPValue::LongString("request".into()));
/// headers.insert("trace_id", AMQPValue::Void);
/// assert_eq!(headers.keys().collect::<Vec<_>>(), ["nuropb_type", "trace_id"]);
/// ```
#[derive(Clone, Default)]
pub struct Headers {
    /// The keys, one after another: one allocation for all of them.
    names: String,
    /// Per entry, in order: where its key ends in `names`, and its value.
    entries: Vec<(usize, AMQPValue)>,
}

impl Headers {
    /// An empty table with room for `entries` entries whose keys take `key_bytes` bytes in all.
    pub fn with_capacity(entries: usize, key_bytes: usize) -> Self {
        Headers {
            names: String::with_capacity(key_bytes),
            entries: Vec::with_capacity(entries),
        }
    }

    /// The value under `key`, if any (the first, should the table repeat a key).
    pub fn get(&self, key: &str) -> Option<&AMQPValue> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
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
        if let Some(at) = self.position(key) {
            self.entries[at].1 = value;
        } else {
            if key.len() > 255 {
                return Err(PropertiesError::KeyTooLong);
            }
            self.push(key, value);
        }
        Ok(())
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<AMQPValue> {
        let at = self.position(key)?;
        let start = self.start(at);
        let (end, value) = self.entries.remove(at);
        self.names.replace_range(start..end, "");
        for entry in &mut self.entries[at..] {
            entry.0 -= end - start;
        }
        Some(value)
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AMQPValue)> {
        self.entries.iter().scan(0, |start, (end, value)| {
            let key = self.names.get(*start..*end).unwrap_or_default();
            *start = *end;
            Some((key, value))
        })
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends an entry without looking for the key (a table read from the wire may repeat one).
    fn push(&mut self, key: &str, value: AMQPValue) {
        self.names.push_str(key);
        self.entries.push((self.names.len(), value));
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.keys().position(|k| k == key)
    }

    fn start(&self, at: usize) -> usize {
        match at {
            0 => 0,
            _ => self.entries[at - 1].0,
        }
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(ShortString, AMQPValue)> for Headers {
    fn from_iter<T: IntoIterator<Item = (ShortString, AMQPValue)>>(iter: T) -> Self {
        let mut headers = Headers::default();
        for (k, v) in iter {
            if let Some(at) = headers.position(k.as_str()) {
                headers.entries[at].1 = v;
            } else {
                headers.push(k.as_str(), v);
            }
        }
        headers
    }
}

/// The content properties of a basic-class message (AMQP 0-9-1 §4.2.6, the `basic` class).
///
/// Every property is optional; an absent property is not written, a present one sets its flag bit.
/// ```
/// use nuropb_proto::amqp::Properties;
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
    /// A property that is an AMQP short string is longer than 255 bytes (its length).
    #[error("a short-string property of {0} bytes; at most 255 fit")]
    ShortStringTooLong(usize),
}

/// The bits of the property flag word, one per property (AMQP 0-9-1, basic class).
pub mod flag {
    /// `content_type`.
    pub const CONTENT_TYPE: u16 = 1 << 15;
    /// `content_encoding`.
    pub const CONTENT_ENCODING: u16 = 1 << 14;
    /// `headers`.
    pub const HEADERS: u16 = 1 << 13;
    /// `delivery_mode`.
    pub const DELIVERY_MODE: u16 = 1 << 12;
    /// `priority`.
    pub const PRIORITY: u16 = 1 << 11;
    /// `correlation_id`.
    pub const CORRELATION_ID: u16 = 1 << 10;
    /// `reply_to`.
    pub const REPLY_TO: u16 = 1 << 9;
    /// `expiration`.
    pub const EXPIRATION: u16 = 1 << 8;
    /// `message_id`.
    pub const MESSAGE_ID: u16 = 1 << 7;
    /// `timestamp`.
    pub const TIMESTAMP: u16 = 1 << 6;
    /// `type`.
    pub const KIND: u16 = 1 << 5;
    /// `user_id`.
    pub const USER_ID: u16 = 1 << 4;
    /// `app_id`.
    pub const APP_ID: u16 = 1 << 3;
    /// `cluster_id`.
    pub const CLUSTER_ID: u16 = 1 << 2;
    /// Another flag word follows (never for the basic class).
    pub const CONTINUATION: u16 = 1;
}

use flag::*;

impl Properties {
    /// The property flag word: one bit per present property.
    pub fn flags(&self) -> u16 {
        self.borrowed().flags()
    }

    /// Appends the flag word and the present properties, in wire order, to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.borrowed().write(out);
    }

    /// These properties, borrowed.
    fn borrowed(&self) -> PropertiesRef<'_> {
        fn short(s: &Option<ShortString>) -> Option<&str> {
            s.as_ref().map(ShortString::as_str)
        }
        PropertiesRef {
            content_type: short(&self.content_type),
            content_encoding: short(&self.content_encoding),
            headers: self.headers.as_ref().map(HeadersRef::Table),
            delivery_mode: self.delivery_mode,
            priority: self.priority,
            correlation_id: short(&self.correlation_id),
            reply_to: short(&self.reply_to),
            expiration: short(&self.expiration),
            message_id: short(&self.message_id),
            timestamp: self.timestamp,
            kind: short(&self.kind),
            user_id: short(&self.user_id),
            app_id: short(&self.app_id),
            cluster_id: short(&self.cluster_id),
        }
    }

    /// Decodes a flag word and property list that make up the whole of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Properties, PropertiesError> {
        let mut props = Properties::default();
        props.decode_into(bytes)?;
        Ok(props)
    }

    /// Decodes like [`Properties::decode`] into `self`, which must be empty (all `None`): the
    /// receive path fills the properties of a delivery where they will stay. On an error `self` is
    /// partly filled.
    pub(crate) fn decode_into(&mut self, bytes: &[u8]) -> Result<(), PropertiesError> {
        let (flags, mut rest) = split_u16(bytes)?;
        if flags & CONTINUATION != 0 {
            return Err(PropertiesError::Continuation);
        }
        let props = self;
        let short = |rest: &mut &[u8], bit: u16| -> Result<Option<ShortString>, PropertiesError> {
            if flags & bit == 0 {
                return Ok(None);
            }
            read_short_string(rest).map(Some)
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
        Ok(())
    }
}

/// The header table of a [`PropertiesRef`].
#[derive(Clone, Copy, Debug)]
pub enum HeadersRef<'a> {
    /// A table of any values.
    Table(&'a Headers),
    /// Keys with long-string values, or void where `None`: the shape NuroPb's headers have.
    LongStrings(&'a [(&'a str, Option<&'a [u8]>)]),
}

/// Content properties borrowed from wherever they are, written without building a
/// [`Properties`]: for paths that publish the same shape again and again. Strings longer than
/// an AMQP short string allows are a [`PropertiesError::ShortStringTooLong`].
///
/// ```
/// use nuropb_proto::amqp::{HeadersRef, Properties, PropertiesRef};
///
/// let headers = [("nuropb_type", Some(&b"event"[..])), ("trace_id", None)];
/// let props = PropertiesRef {
///     content_type: Some("application/json"),
///     headers: Some(HeadersRef::LongStrings(&headers)),
///     ..PropertiesRef::default()
/// };
/// let mut bytes = Vec::new();
/// props.encode(&mut bytes).unwrap();
/// let decoded = Properties::decode(&bytes).unwrap();
/// assert_eq!(decoded.headers.unwrap().keys().collect::<Vec<_>>(), ["nuropb_type", "trace_id"]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct PropertiesRef<'a> {
    /// MIME content type.
    pub content_type: Option<&'a str>,
    /// MIME content encoding.
    pub content_encoding: Option<&'a str>,
    /// Application headers, in order.
    pub headers: Option<HeadersRef<'a>>,
    /// 1 = transient, 2 = persistent.
    pub delivery_mode: Option<u8>,
    /// Priority.
    pub priority: Option<u8>,
    /// Application correlation identifier.
    pub correlation_id: Option<&'a str>,
    /// Address to reply to.
    pub reply_to: Option<&'a str>,
    /// Expiration, milliseconds as a decimal string.
    pub expiration: Option<&'a str>,
    /// Application message identifier.
    pub message_id: Option<&'a str>,
    /// Timestamp, seconds since the epoch.
    pub timestamp: Option<u64>,
    /// Message type name.
    pub kind: Option<&'a str>,
    /// Creating user id.
    pub user_id: Option<&'a str>,
    /// Creating application id.
    pub app_id: Option<&'a str>,
    /// Deprecated cluster id.
    pub cluster_id: Option<&'a str>,
}

impl PropertiesRef<'_> {
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

    /// Appends the flag word and the present properties to `out`; on an error `out` is as it
    /// was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), PropertiesError> {
        let strings = [
            self.content_type,
            self.content_encoding,
            self.correlation_id,
            self.reply_to,
            self.expiration,
            self.message_id,
            self.kind,
            self.user_id,
            self.app_id,
            self.cluster_id,
        ];
        if let Some(long) = strings.into_iter().flatten().find(|s| s.len() > 255) {
            return Err(PropertiesError::ShortStringTooLong(long.len()));
        }
        if let Some(HeadersRef::LongStrings(entries)) = self.headers
            && entries.iter().any(|(key, _)| key.len() > 255)
        {
            return Err(PropertiesError::KeyTooLong);
        }
        self.write(out);
        Ok(())
    }

    /// Writes what [`PropertiesRef::encode`] checked (or what [`Properties`] guarantees).
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.flags().to_be_bytes());
        let short = |out: &mut Vec<u8>, s: Option<&str>| {
            if let Some(s) = s {
                out.push(s.len() as u8);
                out.extend_from_slice(s.as_bytes());
            }
        };
        short(out, self.content_type);
        short(out, self.content_encoding);
        match self.headers {
            Some(HeadersRef::Table(headers)) => encode_table(headers, out),
            Some(HeadersRef::LongStrings(entries)) => encode_long_strings(entries, out),
            None => {}
        }
        if let Some(mode) = self.delivery_mode {
            out.push(mode);
        }
        if let Some(priority) = self.priority {
            out.push(priority);
        }
        short(out, self.correlation_id);
        short(out, self.reply_to);
        short(out, self.expiration);
        short(out, self.message_id);
        if let Some(ts) = self.timestamp {
            out.extend_from_slice(&ts.to_be_bytes());
        }
        short(out, self.kind);
        short(out, self.user_id);
        short(out, self.app_id);
        short(out, self.cluster_id);
    }
}

/// Writes a field table of long strings (type `S`) and voids (type `V`).
fn encode_long_strings(entries: &[(&str, Option<&[u8]>)], out: &mut Vec<u8>) {
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    for (key, value) in entries {
        out.push(key.len() as u8);
        out.extend_from_slice(key.as_bytes());
        match value {
            Some(bytes) => {
                out.push(b'S');
                out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
            None => out.push(b'V'),
        }
    }
    let len = (out.len() - len_at - 4) as u32;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
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
    for (key, value) in headers.iter() {
        let buf = std::mem::take(out);
        *out = write_with(buf, |ctx| {
            let ctx = gen_short_string(key)(ctx)?;
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
    // A guess at the entry count and key bytes, so that a usual table allocates twice.
    let mut headers = Headers {
        names: String::with_capacity(len / 2),
        entries: Vec::with_capacity((len / 16).clamp(1, 16)),
    };
    while !table.is_empty() {
        let key = read_short_str(&mut table)?;
        let value = read_value(&mut table, 1)?;
        headers.push(key, value);
    }
    Ok((headers, rest))
}

/// Takes `n` bytes off the front of `input`.
fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], PropertiesError> {
    if input.len() < n {
        return Err(PropertiesError::Malformed);
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn take_array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], PropertiesError> {
    let (head, tail) = input
        .split_first_chunk::<N>()
        .ok_or(PropertiesError::Malformed)?;
    *input = tail;
    Ok(*head)
}

/// A short string: length octet, then UTF-8 bytes.
fn read_short_str<'a>(input: &mut &'a [u8]) -> Result<&'a str, PropertiesError> {
    let [len] = take_array::<1>(input)?;
    let bytes = take(input, len as usize)?;
    std::str::from_utf8(bytes).map_err(|_| PropertiesError::Malformed)
}

fn read_short_string(input: &mut &[u8]) -> Result<ShortString, PropertiesError> {
    // At most 255 bytes by construction.
    ShortString::try_new(read_short_str(input)?).map_err(|_| PropertiesError::Malformed)
}

/// Bytes with a 32-bit length prefix.
fn read_long_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], PropertiesError> {
    let len = u32::from_be_bytes(take_array::<4>(input)?);
    take(input, len as usize)
}

/// One typed value inside a table at nesting `depth`, decoded as `amq-protocol` decodes it:
/// RabbitMQ's tags (`s` and `U` a short int, `l` and `L` a signed long long, `x` a byte array).
fn read_value(input: &mut &[u8], depth: usize) -> Result<AMQPValue, PropertiesError> {
    let [tag] = take_array::<1>(input)?;
    Ok(match tag {
        b't' => AMQPValue::Boolean(take_array::<1>(input)?[0] != 0),
        b'b' => AMQPValue::ShortShortInt(i8::from_be_bytes(take_array(input)?)),
        b'B' => AMQPValue::ShortShortUInt(u8::from_be_bytes(take_array(input)?)),
        b's' | b'U' => AMQPValue::ShortInt(i16::from_be_bytes(take_array(input)?)),
        b'u' => AMQPValue::ShortUInt(u16::from_be_bytes(take_array(input)?)),
        b'I' => AMQPValue::LongInt(i32::from_be_bytes(take_array(input)?)),
        b'i' => AMQPValue::LongUInt(u32::from_be_bytes(take_array(input)?)),
        b'l' | b'L' => AMQPValue::LongLongInt(i64::from_be_bytes(take_array(input)?)),
        b'f' => AMQPValue::Float(f32::from_be_bytes(take_array(input)?)),
        b'd' => AMQPValue::Double(f64::from_be_bytes(take_array(input)?)),
        b'D' => {
            let [scale] = take_array::<1>(input)?;
            let value = u32::from_be_bytes(take_array(input)?);
            AMQPValue::DecimalValue(DecimalValue { scale, value })
        }
        b'S' => AMQPValue::LongString(LongString::from(read_long_bytes(input)?.to_vec())),
        b'x' => AMQPValue::ByteArray(ByteArray::from(read_long_bytes(input)?)),
        b'T' => AMQPValue::Timestamp(u64::from_be_bytes(take_array(input)?)),
        b'V' => AMQPValue::Void,
        b'F' => {
            if depth + 1 > MAX_NESTING {
                return Err(PropertiesError::TooDeep);
            }
            let mut inner = read_long_bytes(input)?;
            let mut table = FieldTable::default();
            while !inner.is_empty() {
                let key = read_short_string(&mut inner)?;
                let value = read_value(&mut inner, depth + 1)?;
                table.insert(key, value);
            }
            AMQPValue::FieldTable(table)
        }
        b'A' => {
            if depth + 1 > MAX_NESTING {
                return Err(PropertiesError::TooDeep);
            }
            let mut inner = read_long_bytes(input)?;
            let mut array = Vec::new();
            while !inner.is_empty() {
                array.push(read_value(&mut inner, depth + 1)?);
            }
            AMQPValue::FieldArray(FieldArray::from(array))
        }
        _ => return Err(PropertiesError::Malformed),
    })
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
    use amq_protocol::types::generation::gen_field_table;
    use amq_protocol::types::parsing::parse_field_table;
    use proptest::prelude::*;

    fn scalar() -> impl Strategy<Value = AMQPValue> {
        prop_oneof![
            any::<bool>().prop_map(AMQPValue::Boolean),
            any::<i8>().prop_map(AMQPValue::ShortShortInt),
            any::<u8>().prop_map(AMQPValue::ShortShortUInt),
            any::<i16>().prop_map(AMQPValue::ShortInt),
            any::<u16>().prop_map(AMQPValue::ShortUInt),
            any::<i32>().prop_map(AMQPValue::LongInt),
            any::<u32>().prop_map(AMQPValue::LongUInt),
            any::<i64>().prop_map(AMQPValue::LongLongInt),
            prop::num::f32::NORMAL.prop_map(AMQPValue::Float),
            prop::num::f64::NORMAL.prop_map(AMQPValue::Double),
            (any::<u8>(), any::<u32>())
                .prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
            proptest::collection::vec(any::<u8>(), 0..20)
                .prop_map(|v| AMQPValue::LongString(v.into())),
            proptest::collection::vec(any::<u8>(), 0..20)
                .prop_map(|v| AMQPValue::ByteArray(v.into())),
            any::<u64>().prop_map(AMQPValue::Timestamp),
            Just(AMQPValue::Void),
        ]
    }

    fn value() -> impl Strategy<Value = AMQPValue> {
        scalar().prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6)
                    .prop_map(|v| AMQPValue::FieldArray(v.into())),
                proptest::collection::btree_map("[a-z_.-]{0,12}", inner, 0..6).prop_map(|m| {
                    AMQPValue::FieldTable(
                        m.into_iter()
                            .map(|(k, v)| (ShortString::from(k), v))
                            .collect::<std::collections::BTreeMap<_, _>>()
                            .into(),
                    )
                }),
            ]
        })
    }

    proptest! {
        /// The hand-written decoder reads every value as amq-protocol's parser does.
        #[test]
        fn values_decode_like_amq_protocol(
            entries in proptest::collection::btree_map("[a-z_]{1,12}", value(), 0..8)
        ) {
            let table: FieldTable = entries
                .iter()
                .map(|(k, v)| (ShortString::from(k.as_str()), v.clone()))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into();
            let bytes = write_with(Vec::new(), |ctx| gen_field_table(&table)(ctx));
            let (rest, theirs) = parse_field_table(&bytes[..]).expect("amq-protocol parses its own");
            prop_assert!(rest.is_empty());
            let (ours, rest) = decode_table(&bytes).expect("we parse it too");
            prop_assert!(rest.is_empty());
            let ours: FieldTable = ours
                .iter()
                .map(|(k, v)| (ShortString::from(k), v.clone()))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into();
            prop_assert_eq!(ours, theirs);
        }
    }

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
    fn headers_insert_replace_remove_keep_order() {
        let mut h = nuropb_headers();
        h.insert("nuropb_type", AMQPValue::LongString("request".into()));
        assert_eq!(h.len(), 5);
        assert_eq!(
            h.remove("nuropb_version"),
            Some(AMQPValue::LongString("0.1.8".into()))
        );
        assert_eq!(h.remove("nuropb_version"), None);
        assert_eq!(
            h.keys().collect::<Vec<_>>(),
            ["nuropb_protocol", "nuropb_type", "trace_id", "encrypted"]
        );
        assert_eq!(h.get("trace_id"), Some(&AMQPValue::Void));
        assert_eq!(
            h.get("nuropb_type"),
            Some(&AMQPValue::LongString("request".into()))
        );
        h.insert("x", AMQPValue::Boolean(true));
        assert_eq!(h.keys().last(), Some("x"));
        assert_eq!(
            h.try_insert(&"k".repeat(256), AMQPValue::Void),
            Err(PropertiesError::KeyTooLong)
        );
        // Equality is by entries, not by how they were built.
        let rebuilt: Headers = h
            .iter()
            .map(|(k, v)| (ShortString::from(k), v.clone()))
            .collect();
        assert_eq!(rebuilt, h);
        assert_ne!(rebuilt, nuropb_headers());
        assert_eq!(
            format!("{:?}", Headers::from_iter([("a".into(), AMQPValue::Void)])),
            r#"{"a": Void}"#
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

#[cfg(test)]
mod borrowed_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The borrowed writer of long-string headers writes what the general encoder writes
        /// for the same table.
        #[test]
        fn long_string_headers_encode_as_the_general_table_does(
            entries in proptest::collection::vec(
                ("[a-z_]{1,20}", proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))),
                0..8,
            ),
            correlation in proptest::option::of("[a-f0-9]{0,40}"),
            expiration in proptest::option::of("[0-9]{1,9}"),
        ) {
            let borrowed: Vec<(&str, Option<&[u8]>)> =
                entries.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
            let mut ours = Vec::new();
            PropertiesRef {
                content_type: Some("application/json"),
                headers: Some(HeadersRef::LongStrings(&borrowed)),
                correlation_id: correlation.as_deref(),
                expiration: expiration.as_deref(),
                ..PropertiesRef::default()
            }
            .encode(&mut ours)
            .unwrap();
            let mut table = Headers::default();
            for (k, v) in &entries {
                // A repeated key: the general table replaces, the list repeats; skip those.
                if table.get(k).is_some() {
                    return Ok(());
                }
                table.insert(k, v.clone().map_or(AMQPValue::Void, |b| AMQPValue::LongString(b.into())));
            }
            let general = Properties {
                content_type: Some("application/json".into()),
                headers: Some(table),
                correlation_id: correlation.as_deref().map(Into::into),
                expiration: expiration.as_deref().map(Into::into),
                ..Properties::default()
            };
            let mut theirs = Vec::new();
            general.encode(&mut theirs);
            prop_assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn over_long_strings_are_refused_and_nothing_is_written() {
        let long = "x".repeat(256);
        let mut out = vec![1, 2];
        let props = PropertiesRef {
            reply_to: Some(&long),
            ..PropertiesRef::default()
        };
        assert_eq!(
            props.encode(&mut out),
            Err(PropertiesError::ShortStringTooLong(256))
        );
        assert_eq!(out, [1, 2]);
    }
}
