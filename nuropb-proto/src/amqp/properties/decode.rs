//! Reading a property list: all of it, or as much of a bad one as can be read safely.
//!
//! One pass over the bytes. A fault the reader can step over — a string that is not UTF-8, a
//! header entry it cannot take — is noted (the first one is kept) and reading goes on: every
//! property and header entry has a length, so the next one can be found without understanding
//! this one. Only a length that runs past the end, or a continuation flag, stops it. Nested
//! values recurse at most [`MAX_NESTING`] levels, whatever the bytes say.

use amq_protocol::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};

use super::flag::*;
use super::{Headers, MAX_NESTING, Properties, PropertiesError};

/// Reads `bytes` into `props` (all `None`); the error is the first fault, `props` holds what was
/// read.
pub(super) fn read(props: &mut Properties, bytes: &[u8]) -> Result<(), PropertiesError> {
    let mut reader = Reader {
        rest: bytes,
        fault: None,
    };
    let stopped = reader.properties(props).err();
    match reader.fault.or(stopped) {
        Some(fault) => Err(fault),
        None => Ok(()),
    }
}

/// The bytes still to read, and the first fault stepped over.
struct Reader<'a> {
    rest: &'a [u8],
    fault: Option<PropertiesError>,
}

impl<'a> Reader<'a> {
    /// Notes a fault that reading can go on after; the first one is the one reported.
    fn note(&mut self, fault: PropertiesError) {
        self.fault.get_or_insert(fault);
    }

    /// The properties in wire order; `Err` when the rest cannot be found.
    fn properties(&mut self, p: &mut Properties) -> Result<(), PropertiesError> {
        let flags = u16::from_be_bytes(take_array(&mut self.rest)?);
        if flags & CONTINUATION != 0 {
            return Err(PropertiesError::Continuation);
        }
        if flags & RESERVED != 0 {
            self.note(PropertiesError::UnknownFlags(flags & RESERVED));
        }
        p.content_type = self.short(flags, CONTENT_TYPE, "content_type")?;
        p.content_encoding = self.short(flags, CONTENT_ENCODING, "content_encoding")?;
        if flags & HEADERS != 0 {
            p.headers = Some(self.table()?);
        }
        if flags & DELIVERY_MODE != 0 {
            p.delivery_mode = Some(u8::from_be_bytes(take_array(&mut self.rest)?));
        }
        if flags & PRIORITY != 0 {
            p.priority = Some(u8::from_be_bytes(take_array(&mut self.rest)?));
        }
        p.correlation_id = self.short(flags, CORRELATION_ID, "correlation_id")?;
        p.reply_to = self.short(flags, REPLY_TO, "reply_to")?;
        p.expiration = self.short(flags, EXPIRATION, "expiration")?;
        p.message_id = self.short(flags, MESSAGE_ID, "message_id")?;
        if flags & TIMESTAMP != 0 {
            p.timestamp = Some(u64::from_be_bytes(take_array(&mut self.rest)?));
        }
        p.kind = self.short(flags, KIND, "type")?;
        p.user_id = self.short(flags, USER_ID, "user_id")?;
        p.app_id = self.short(flags, APP_ID, "app_id")?;
        p.cluster_id = self.short(flags, CLUSTER_ID, "cluster_id")?;
        if !self.rest.is_empty() {
            return Err(PropertiesError::TrailingBytes(self.rest.len()));
        }
        Ok(())
    }

    /// A short-string property when its `bit` is set; one that is not UTF-8 is left out.
    fn short(
        &mut self,
        flags: u16,
        bit: u16,
        name: &'static str,
    ) -> Result<Option<ShortString>, PropertiesError> {
        if flags & bit == 0 {
            return Ok(None);
        }
        let [len] = take_array(&mut self.rest)?;
        let bytes = take(&mut self.rest, len as usize)?;
        match std::str::from_utf8(bytes) {
            // At most 255 bytes by construction.
            Ok(s) => ShortString::try_new(s)
                .map(Some)
                .map_err(|_| PropertiesError::Malformed),
            Err(_) => {
                self.note(PropertiesError::NotUtf8(name));
                Ok(None)
            }
        }
    }

    /// The header table, keeping its order; an entry that cannot be read is skipped.
    fn table(&mut self) -> Result<Headers, PropertiesError> {
        let len = u32::from_be_bytes(take_array(&mut self.rest)?) as usize;
        let mut table = take(&mut self.rest, len)?;
        // A guess at the entry count and key bytes, so that a usual table allocates twice.
        let mut headers = Headers::with_capacity((len / 16).clamp(1, 16), len / 2);
        while !table.is_empty() {
            let entry = table;
            match read_entry(&mut table) {
                Ok((key, value)) => headers.push(key, value),
                Err(fault) => {
                    self.note(fault);
                    match skip_entry(entry) {
                        Some(rest) => table = rest,
                        // Where the next entry starts is unknowable: the rest of the table goes.
                        None => break,
                    }
                }
            }
        }
        Ok(headers)
    }
}

/// One entry of a table: its key and its value.
fn read_entry<'a>(input: &mut &'a [u8]) -> Result<(&'a str, AMQPValue), PropertiesError> {
    let key = read_short_str(input)?;
    let value = read_value(input, 1)?;
    Ok((key, value))
}

/// Skips one table entry by its length fields, without looking inside nested values: `None` when
/// its type is unknown or it runs past the end.
fn skip_entry(entry: &[u8]) -> Option<&[u8]> {
    let (&key_len, rest) = entry.split_first()?;
    let (&tag, rest) = rest.get(key_len as usize..)?.split_first()?;
    let size = match tag {
        b't' | b'b' | b'B' => 1,
        b's' | b'U' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'l' | b'L' | b'd' | b'T' => 8,
        b'D' => 5,
        b'V' => 0,
        b'S' | b'x' | b'F' | b'A' => {
            let (len, _) = rest.split_first_chunk::<4>()?;
            4 + u32::from_be_bytes(*len) as usize
        }
        _ => return None,
    };
    rest.get(size..)
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

/// A table key: length octet, then UTF-8 bytes.
fn read_short_str<'a>(input: &mut &'a [u8]) -> Result<&'a str, PropertiesError> {
    let [len] = take_array::<1>(input)?;
    let bytes = take(input, len as usize)?;
    std::str::from_utf8(bytes).map_err(|_| PropertiesError::NotUtf8("header key"))
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
        _ => return Err(PropertiesError::UnknownType(tag)),
    })
}

#[cfg(test)]
mod tests {
    use super::super::encode::write_with;
    use super::*;
    use amq_protocol::types::generation::gen_field_table;
    use amq_protocol::types::parsing::parse_field_table;
    use proptest::prelude::*;

    /// Reads a field table that starts `bytes`; returns the rest.
    fn decode_table(bytes: &[u8]) -> Result<(Headers, &[u8]), PropertiesError> {
        let mut reader = Reader {
            rest: bytes,
            fault: None,
        };
        let headers = reader.table()?;
        match reader.fault {
            Some(fault) => Err(fault),
            None => Ok((headers, reader.rest)),
        }
    }

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

        /// Whatever the header table holds, the properties after it are read: a service can
        /// answer any message whose table keeps to its length.
        #[test]
        fn properties_after_any_table_are_read(
            table in proptest::collection::vec(any::<u8>(), 0..96),
            correlation_id in "[a-f0-9]{1,32}",
            reply_to in "[a-z.-]{1,40}",
        ) {
            let mut bytes = (HEADERS | CORRELATION_ID | REPLY_TO).to_be_bytes().to_vec();
            bytes.extend_from_slice(&(table.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&table);
            short(&mut bytes, correlation_id.as_bytes());
            short(&mut bytes, reply_to.as_bytes());
            let (props, fault) = Properties::salvage(&bytes);
            prop_assert_eq!(props.correlation_id.as_ref().map(|c| c.as_str()), Some(correlation_id.as_str()));
            prop_assert_eq!(props.reply_to.as_ref().map(|r| r.as_str()), Some(reply_to.as_str()));
            prop_assert!(props.headers.is_some());
            prop_assert_eq!(fault.is_none(), Properties::decode(&bytes).is_ok());
        }
    }

    fn short(out: &mut Vec<u8>, s: &[u8]) {
        out.push(s.len() as u8);
        out.extend_from_slice(s);
    }

    fn long_string(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
        short(out, key);
        out.push(b'S');
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }

    /// `{"k": {"k": … }}`, `levels` tables deep.
    fn nested(levels: usize) -> Vec<u8> {
        let mut inner: Vec<u8> = Vec::new();
        for _ in 0..levels {
            let mut t = vec![1, b'k', b'F'];
            t.extend_from_slice(&(inner.len() as u32).to_be_bytes());
            t.extend_from_slice(&inner);
            inner = t;
        }
        inner
    }

    /// A NuroPb-shaped list whose header table holds `bad` between two good entries; then a
    /// correlation id and a reply-to.
    fn with_bad_entry(bad: &[u8]) -> Vec<u8> {
        let mut table = Vec::new();
        long_string(&mut table, b"nuropb_type", b"request");
        table.extend_from_slice(bad);
        long_string(&mut table, b"trace_id", b"t-1");
        let mut bytes = (CONTENT_TYPE | HEADERS | CORRELATION_ID | REPLY_TO)
            .to_be_bytes()
            .to_vec();
        short(&mut bytes, b"application/json");
        bytes.extend_from_slice(&(table.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&table);
        short(&mut bytes, b"c-1");
        short(&mut bytes, b"amq.gen-reply");
        bytes
    }

    fn assert_salvaged(bytes: &[u8], fault: PropertiesError, keys: &[&str]) {
        let (props, found) = Properties::salvage(bytes);
        assert_eq!(found, Some(fault.clone()));
        assert_eq!(Properties::decode(bytes), Err(fault));
        assert_eq!(
            props.correlation_id.as_ref().map(|c| c.as_str()),
            Some("c-1")
        );
        assert_eq!(
            props.reply_to.as_ref().map(|c| c.as_str()),
            Some("amq.gen-reply")
        );
        let headers = props.headers.expect("the table was read");
        assert_eq!(headers.keys().collect::<Vec<_>>(), keys);
    }

    #[test]
    fn a_header_nested_too_deep_is_skipped_and_the_rest_is_read() {
        // 10 000 nested tables: the decoder descends MAX_NESTING levels, then skips by length.
        let bad = nested(10_000);
        assert_salvaged(
            &with_bad_entry(&bad),
            PropertiesError::TooDeep,
            &["nuropb_type", "trace_id"],
        );
        // MAX_NESTING levels, the header table's own included, are read; one more is not.
        let (props, fault) = Properties::salvage(&with_bad_entry(&nested(MAX_NESTING - 1)));
        assert_eq!(fault, None);
        assert_eq!(props.headers.unwrap().len(), 3);
        let (_, fault) = Properties::salvage(&with_bad_entry(&nested(MAX_NESTING)));
        assert_eq!(fault, Some(PropertiesError::TooDeep));
    }

    #[test]
    fn a_key_that_is_not_utf8_is_skipped() {
        let mut bad = Vec::new();
        long_string(&mut bad, b"\xff\xfe", b"x");
        assert_salvaged(
            &with_bad_entry(&bad),
            PropertiesError::NotUtf8("header key"),
            &["nuropb_type", "trace_id"],
        );
        // Inside a nested table too: the whole entry goes.
        let mut inner = Vec::new();
        long_string(&mut inner, b"\xc3", b"x");
        let mut bad = vec![1, b'n', b'F'];
        bad.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        bad.extend_from_slice(&inner);
        assert_salvaged(
            &with_bad_entry(&bad),
            PropertiesError::NotUtf8("header key"),
            &["nuropb_type", "trace_id"],
        );
    }

    #[test]
    fn an_unknown_type_ends_the_table_but_not_the_properties() {
        let bad = [1, b'z', b'Z', 1, 2, 3, 4];
        assert_salvaged(
            &with_bad_entry(&bad),
            PropertiesError::UnknownType(b'Z'),
            &["nuropb_type"],
        );
        // Nested, it is skipped by the enclosing array's length.
        let bad = [1, b'a', b'A', 0, 0, 0, 2, b'Z', 0];
        assert_salvaged(
            &with_bad_entry(&bad),
            PropertiesError::UnknownType(b'Z'),
            &["nuropb_type", "trace_id"],
        );
    }

    #[test]
    fn strings_that_are_not_utf8_are_left_out() {
        let mut bytes = (CONTENT_TYPE | CORRELATION_ID | REPLY_TO | APP_ID)
            .to_be_bytes()
            .to_vec();
        short(&mut bytes, b"\x80json");
        short(&mut bytes, b"c-1");
        short(&mut bytes, b"rq");
        short(&mut bytes, b"\xff");
        let (props, fault) = Properties::salvage(&bytes);
        // The first fault in wire order is reported.
        assert_eq!(fault, Some(PropertiesError::NotUtf8("content_type")));
        assert_eq!(props.content_type, None);
        assert_eq!(props.app_id, None);
        assert_eq!(props.correlation_id.unwrap().as_str(), "c-1");
        assert_eq!(props.reply_to.unwrap().as_str(), "rq");
    }

    #[test]
    fn flags_the_basic_class_does_not_have() {
        let mut bytes = (CORRELATION_ID | RESERVED).to_be_bytes().to_vec();
        short(&mut bytes, b"c-1");
        let (props, fault) = Properties::salvage(&bytes);
        assert_eq!(fault, Some(PropertiesError::UnknownFlags(RESERVED)));
        assert_eq!(props.correlation_id.unwrap().as_str(), "c-1");
        // A continuation: the layout of what follows is unknown.
        let mut bytes = (CORRELATION_ID | CONTINUATION).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0, 0]);
        short(&mut bytes, b"c-1");
        let (props, fault) = Properties::salvage(&bytes);
        assert_eq!(fault, Some(PropertiesError::Continuation));
        assert_eq!(props, Properties::default());
    }

    #[test]
    fn a_table_longer_than_the_list_stops_before_it() {
        let mut bytes = (CONTENT_TYPE | HEADERS | CORRELATION_ID)
            .to_be_bytes()
            .to_vec();
        short(&mut bytes, b"application/json");
        bytes.extend_from_slice(&1000u32.to_be_bytes());
        bytes.extend_from_slice(b"ab");
        let (props, fault) = Properties::salvage(&bytes);
        assert_eq!(fault, Some(PropertiesError::Malformed));
        assert_eq!(props.content_type.unwrap().as_str(), "application/json");
        assert_eq!(props.headers, None);
    }

    #[test]
    fn truncation_and_trailing_bytes_are_errors() {
        let mut headers = Headers::default();
        headers.insert("nuropb_type", AMQPValue::LongString("event".into()));
        headers.insert("trace_id", AMQPValue::Void);
        let props = Properties {
            headers: Some(headers),
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
        // Trailing bytes come after every property: all of them were read.
        let (salvaged, _) = Properties::salvage(&bytes);
        assert_eq!(salvaged, props);
    }
}
