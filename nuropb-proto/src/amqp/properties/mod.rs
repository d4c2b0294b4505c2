//! Basic-class content properties, with a header table that keeps its order.
//!
//! `amq-protocol` keeps field tables in a `BTreeMap`, which writes keys in alphabetical order. NuroPb
//! peers write their five headers in a fixed order, and RabbitMQ forwards property bytes unchanged, so a
//! byte-exact peer needs a table that keeps insertion order. [`Properties`] is that: the fourteen
//! properties of the basic class, with [`Headers`] as an ordered list, encoded and decoded here with
//! `amq-protocol`'s value codecs.
//!
//! A property list is the publisher's: RabbitMQ checks only its structure and forwards it byte for
//! byte, so a consumer may receive strings that are not UTF-8, tables nested deeper than anyone
//! reads, reserved flag bits. [`Properties::decode`] refuses all of that; [`Properties::salvage`]
//! reads as much of such a list as can be read safely — every property it can, each header entry
//! it can, skipping a bad one by its length fields — and says what was wrong first, so that a
//! receiver can still answer the message it cannot serve. Decoding never panics and recurses at
//! most [`MAX_NESTING`] levels, whatever the bytes say. It is hand-written (one pass, one copy per
//! string) because it runs for every message received; values decode exactly as `amq-protocol`'s
//! parser decodes them (RabbitMQ's type tags), which a test checks.
//!
//! - `headers`: [`Headers`], the ordered table;
//! - `encode`: writing, from [`Properties`] or from borrowed parts ([`PropertiesRef`]);
//! - `decode`: reading, strictly or salvaging;
//! - `nesting`: checking the field tables of method frames before `amq-protocol`'s recursive
//!   parser sees them.

mod decode;
mod encode;
mod headers;
mod nesting;

pub use encode::{HeadersRef, PropertiesRef};
pub use headers::Headers;
pub(crate) use nesting::check_table_nesting;

use amq_protocol::types::ShortString;

/// How deep field tables and arrays may nest inside a header value.
///
/// RabbitMQ's own `x-death` header nests three levels (table → array → table); this leaves room and
/// keeps recursive decoding far from the stack limit. A header nested deeper makes its message
/// unreadable ([`PropertiesError::TooDeep`]), not the connection.
pub const MAX_NESTING: usize = 16;

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
#[non_exhaustive]
pub enum PropertiesError {
    /// The bytes end before the properties their flags announce, or a length runs past its end.
    #[error("content properties are truncated or malformed")]
    Malformed,
    /// The flag word announces a continuation, which the basic class never has.
    #[error("content property flags have the continuation bit set")]
    Continuation,
    /// The flag word sets bits that no property of the basic class uses (the bits).
    #[error("content property flags set unused bits {0:#06x}")]
    UnknownFlags(u16),
    /// A short string is not UTF-8: the property's name, or `header key`.
    #[error("the {0} is not UTF-8")]
    NotUtf8(&'static str),
    /// A header value has a type tag the decoder does not know (the tag).
    #[error("a header value of unknown type {0:#04x}")]
    UnknownType(u8),
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
    /// Unused by the basic class: set, it makes a property list unreadable.
    pub const RESERVED: u16 = 1 << 1;
    /// Another flag word follows (never for the basic class).
    pub const CONTINUATION: u16 = 1;
}

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

    /// Decodes a flag word and property list that make up the whole of `bytes`, refusing
    /// anything [`Properties::salvage`] would find a fault with.
    pub fn decode(bytes: &[u8]) -> Result<Properties, PropertiesError> {
        let mut props = Properties::default();
        props.decode_into(bytes)?;
        Ok(props)
    }

    /// Reads as much of a property list as can be read, and its first fault.
    ///
    /// A short string that is not UTF-8 is left out; a header entry that cannot be read (a key
    /// that is not UTF-8, tables nested deeper than [`MAX_NESTING`], an unknown type inside) is
    /// skipped by its length fields and the entries after it are read; an unknown type tag at the
    /// top of the table ends the table, and the properties after the table are still read. Only a
    /// length that runs past the end, or a continuation flag, ends the reading.
    ///
    /// ```
    /// use nuropb_proto::amqp::{Properties, PropertiesError};
    /// use nuropb_proto::amqp::properties::flag;
    ///
    /// // A correlation id that is not UTF-8, then a reply-to.
    /// let mut bytes = (flag::CORRELATION_ID | flag::REPLY_TO).to_be_bytes().to_vec();
    /// bytes.extend_from_slice(&[2, 0xff, 0xfe, 2, b'r', b'q']);
    /// let (props, fault) = Properties::salvage(&bytes);
    /// assert_eq!(fault, Some(PropertiesError::NotUtf8("correlation_id")));
    /// assert_eq!(props.correlation_id, None);
    /// assert_eq!(props.reply_to.as_ref().map(|r| r.as_str()), Some("rq"));
    /// assert!(Properties::decode(&bytes).is_err());
    /// ```
    pub fn salvage(bytes: &[u8]) -> (Properties, Option<PropertiesError>) {
        let mut props = Properties::default();
        let fault = props.decode_into(bytes).err();
        (props, fault)
    }

    /// Salvages like [`Properties::salvage`] into `self`, which must be empty (all `None`): the
    /// receive path fills the properties of a delivery where they will stay. The error is the
    /// first fault; `self` holds what could be read.
    pub(crate) fn decode_into(&mut self, bytes: &[u8]) -> Result<(), PropertiesError> {
        decode::read(self, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::AMQPValue;

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
}
