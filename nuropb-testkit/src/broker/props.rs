//! Reading a publisher's content properties without decoding them.
//!
//! A published message's properties are forwarded byte for byte, so the broker only needs a few
//! of them — `expiration`, `user_id`, `delivery_mode`, and `headers` when a headers exchange or a
//! dead-letter exchange looks at them. [`scan`] checks the structure of the whole property list
//! as RabbitMQ 3.10 does on publish — lengths that fit, value types it knows (`U` is not one of
//! them), no continuation flag, no trailing bytes — and nothing else: strings need not be UTF-8,
//! tables may nest to any depth (walked without recursion), reserved flag bits pass. A list it
//! refuses closes the publisher's connection with 541 `INTERNAL_ERROR`, as RabbitMQ's does; a list
//! it accepts is delivered as it came, whether the client can read it or not. It hands out
//! borrowed slices, without allocating; the full decode happens only when a message needs it.

use nuropb_proto::amqp::properties::flag::*;

/// What the broker reads from a property list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scanned<'a> {
    pub(crate) expiration: Option<&'a [u8]>,
    pub(crate) user_id: Option<&'a [u8]>,
    pub(crate) delivery_mode: Option<u8>,
    /// Whether there is a `headers` table.
    pub(crate) has_headers: bool,
}

/// What a publish needs from its properties, read once when its content header arrives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Facts {
    /// The `expiration` in milliseconds, or the explanation of RabbitMQ's 406 for a bad one.
    pub(crate) ttl: Result<Option<u64>, String>,
    /// The `user_id` property.
    pub(crate) user_id: Option<String>,
    /// `delivery_mode` 2.
    pub(crate) persistent: bool,
}

/// Checks a property list and reads the [`Facts`] of a publish.
pub(crate) fn facts(bytes: &[u8]) -> Result<Facts, Malformed> {
    let s = scan(bytes)?;
    Ok(Facts {
        ttl: match s.expiration.map(String::from_utf8_lossy) {
            None => Ok(None),
            Some(exp) => parse_expiration(&exp)
                .map(Some)
                .map_err(|e| format!("invalid expiration '{exp}': {e}")),
        },
        user_id: s.user_id.map(|u| String::from_utf8_lossy(u).into_owned()),
        persistent: s.delivery_mode == Some(2),
    })
}

/// RabbitMQ's `parse_expiration`: a decimal count of milliseconds, 0 to 2^32-1.
fn parse_expiration(exp: &str) -> Result<u64, String> {
    // The usual case: a few digits.
    if !exp.is_empty() && exp.len() <= 9 && exp.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(exp.bytes().fold(0, |n, b| n * 10 + (b - b'0') as u64));
    }
    let digits_end = exp
        .char_indices()
        .find(|&(i, ch)| !(ch.is_ascii_digit() || (i == 0 && (ch == '-' || ch == '+'))))
        .map_or(exp.len(), |(i, _)| i);
    let (number, rest) = exp.split_at(digits_end);
    let n: i128 = match number.parse() {
        Ok(n) => n,
        Err(_) if number.len() > 1 => i128::MAX,
        Err(_) => return Err("no_integer".into()),
    };
    if !rest.is_empty() {
        return Err(format!("{{leftover_string,\"{rest}\"}}"));
    }
    if n < 0 {
        return Err(format!("{{value_negative,{n}}}"));
    }
    if n > 4_294_967_295 {
        return Err(format!("{{value_too_large,{n},4294967295}}"));
    }
    Ok(n as u64)
}

/// The property list is not one RabbitMQ accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], Malformed> {
    if input.len() < n {
        return Err(Malformed);
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

/// A short string's bytes (any bytes: RabbitMQ does not check for UTF-8).
fn short_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], Malformed> {
    let len = take(input, 1)?[0] as usize;
    take(input, len)
}

fn long_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], Malformed> {
    let len = take(input, 4)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    take(input, len)
}

/// A table's entries or an array's values, still to be checked.
enum Pending<'a> {
    Table(&'a [u8]),
    Array(&'a [u8]),
}

/// Checks a header table's entries (after its length word) and every table and array nested in
/// them, to any depth, with a work list instead of recursion.
fn table(entries: &[u8]) -> Result<(), Malformed> {
    let mut work = vec![Pending::Table(entries)];
    while let Some(pending) = work.pop() {
        let (mut rest, keyed) = match pending {
            Pending::Table(bytes) => (bytes, true),
            Pending::Array(bytes) => (bytes, false),
        };
        while !rest.is_empty() {
            if keyed {
                short_bytes(&mut rest)?;
            }
            let tag = take(&mut rest, 1)?[0];
            match tag {
                b't' | b'b' | b'B' => drop(take(&mut rest, 1)?),
                b's' | b'u' => drop(take(&mut rest, 2)?),
                b'I' | b'i' | b'f' => drop(take(&mut rest, 4)?),
                b'l' | b'L' | b'd' | b'T' => drop(take(&mut rest, 8)?),
                b'D' => drop(take(&mut rest, 5)?),
                b'S' | b'x' => drop(long_bytes(&mut rest)?),
                b'V' => {}
                b'F' => work.push(Pending::Table(long_bytes(&mut rest)?)),
                b'A' => work.push(Pending::Array(long_bytes(&mut rest)?)),
                _ => return Err(Malformed),
            }
        }
    }
    Ok(())
}

/// Checks a property list (flag word and properties) and reads what the broker needs.
pub(crate) fn scan(bytes: &[u8]) -> Result<Scanned<'_>, Malformed> {
    let mut rest = bytes;
    let flags = take(&mut rest, 2)?;
    let flags = u16::from_be_bytes([flags[0], flags[1]]);
    if flags & CONTINUATION != 0 {
        return Err(Malformed);
    }
    let mut out = Scanned::default();
    fn short<'a>(rest: &mut &'a [u8], flags: u16, bit: u16) -> Result<Option<&'a [u8]>, Malformed> {
        if flags & bit == 0 {
            return Ok(None);
        }
        short_bytes(rest).map(Some)
    }
    short(&mut rest, flags, CONTENT_TYPE)?;
    short(&mut rest, flags, CONTENT_ENCODING)?;
    if flags & HEADERS != 0 {
        table(long_bytes(&mut rest)?)?;
        out.has_headers = true;
    }
    if flags & DELIVERY_MODE != 0 {
        out.delivery_mode = Some(take(&mut rest, 1)?[0]);
    }
    if flags & PRIORITY != 0 {
        take(&mut rest, 1)?;
    }
    short(&mut rest, flags, CORRELATION_ID)?;
    short(&mut rest, flags, REPLY_TO)?;
    out.expiration = short(&mut rest, flags, EXPIRATION)?;
    short(&mut rest, flags, MESSAGE_ID)?;
    if flags & TIMESTAMP != 0 {
        take(&mut rest, 8)?;
    }
    short(&mut rest, flags, KIND)?;
    out.user_id = short(&mut rest, flags, USER_ID)?;
    short(&mut rest, flags, APP_ID)?;
    short(&mut rest, flags, CLUSTER_ID)?;
    if !rest.is_empty() {
        return Err(Malformed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuropb_proto::amqp::{AMQPValue, Headers, Properties};
    use proptest::prelude::*;

    fn full() -> Properties {
        let mut nested = amq_protocol::types::FieldTable::default();
        nested.insert("k".into(), AMQPValue::LongLongInt(-3));
        let mut h = Headers::default();
        h.insert("s", AMQPValue::LongString("v".into()));
        h.insert("v", AMQPValue::Void);
        h.insert("t", AMQPValue::FieldTable(nested));
        h.insert(
            "a",
            AMQPValue::FieldArray(vec![AMQPValue::Boolean(true), AMQPValue::Double(1.5)].into()),
        );
        Properties {
            content_type: Some("application/json".into()),
            content_encoding: Some("gzip".into()),
            headers: Some(h),
            delivery_mode: Some(2),
            priority: Some(3),
            correlation_id: Some("c".into()),
            reply_to: Some("r".into()),
            expiration: Some("60000".into()),
            message_id: Some("m".into()),
            timestamp: Some(7),
            kind: Some("k".into()),
            user_id: Some("guest".into()),
            app_id: Some("a".into()),
            cluster_id: Some("x".into()),
        }
    }

    #[test]
    fn expirations_parse_as_rabbitmq() {
        assert_eq!(parse_expiration("60000"), Ok(60000));
        assert_eq!(parse_expiration("0"), Ok(0));
        assert_eq!(parse_expiration("foo"), Err("no_integer".into()));
        assert_eq!(parse_expiration(""), Err("no_integer".into()));
        assert_eq!(parse_expiration("-5"), Err("{value_negative,-5}".into()));
        assert_eq!(
            parse_expiration("10x"),
            Err("{leftover_string,\"x\"}".into())
        );
        assert_eq!(
            parse_expiration("4294967296"),
            Err("{value_too_large,4294967296,4294967295}".into())
        );
    }

    #[test]
    fn reads_the_fields_the_broker_needs() {
        let mut bytes = Vec::new();
        full().encode(&mut bytes);
        let s = scan(&bytes).unwrap();
        assert_eq!(
            s,
            Scanned {
                expiration: Some(b"60000"),
                user_id: Some(b"guest"),
                delivery_mode: Some(2),
                has_headers: true,
            }
        );
        assert_eq!(scan(&[0, 0]), Ok(Scanned::default()));
    }

    fn with_headers(table: &[u8]) -> Vec<u8> {
        let mut bytes = HEADERS.to_be_bytes().to_vec();
        bytes.extend_from_slice(&(table.len() as u32).to_be_bytes());
        bytes.extend_from_slice(table);
        bytes
    }

    /// The verdicts measured on RabbitMQ 3.10 (the conformance run checks them too).
    #[test]
    fn accepts_what_rabbitmq_forwards_and_refuses_what_it_closes_for() {
        // Forwarded: 2 000 nested tables, keys and strings that are not UTF-8, a reserved
        // flag bit, `L`, repeated and empty keys.
        let mut deep = Vec::new();
        for _ in 0..2_000 {
            let mut t = vec![1, b'k', b'F'];
            t.extend_from_slice(&(deep.len() as u32).to_be_bytes());
            t.extend_from_slice(&deep);
            deep = t;
        }
        let mut not_utf8 = (CORRELATION_ID | RESERVED).to_be_bytes().to_vec();
        not_utf8.extend_from_slice(&[2, 0xff, 0xfe]);
        for ok in [
            with_headers(&deep),
            with_headers(&[2, 0xff, 0xfe, b'V']),
            not_utf8,
            with_headers(&[1, b'k', b'L', 0, 0, 0, 0, 0, 0, 0, 1]),
            with_headers(&[1, b'k', b'V', 1, b'k', b'V', 0, b'V']),
        ] {
            assert!(scan(&ok).is_ok(), "{ok:?}");
            // The client reads what it can of them.
            let _ = Properties::salvage(&ok);
        }
        // Closed for: unknown types at any depth (`U` included), continuation, trailing
        // bytes, lengths that run past the end.
        for bad in [
            with_headers(&[1, b'k', b'U', 0, 1]),
            with_headers(&[1, b'k', b'Z']),
            with_headers(&[1, b'k', b'F', 0, 0, 0, 3, 1, b'j', b'Z']),
            with_headers(&[1, b'k', b'A', 0, 0, 0, 2, b'Z', 0]),
            (CORRELATION_ID | CONTINUATION).to_be_bytes().to_vec(),
            vec![0, 0, 0],
            vec![0x04, 0x00, 16, b'a'],
            {
                let mut b = with_headers(&[]);
                b[5] = 100;
                b
            },
        ] {
            assert_eq!(scan(&bad), Err(Malformed), "{bad:?}");
        }
    }

    proptest! {
        /// A list the client decodes whole is one the broker takes (the converse does not
        /// hold: the broker forwards what the client can only salvage).
        #[test]
        fn every_list_the_client_decodes_passes(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            if Properties::decode(&bytes).is_ok() && !contains_u_tag(&bytes) {
                prop_assert!(scan(&bytes).is_ok());
            }
        }

        #[test]
        fn mutated_lists_never_panic_either_side(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = Vec::new();
            full().encode(&mut bytes);
            for (at, v) in flips {
                let i = at.index(bytes.len());
                bytes[i] = v;
            }
            let bytes = &bytes[..cut.index(bytes.len() + 1)];
            let broker = scan(bytes).is_ok();
            let (_, fault) = Properties::salvage(bytes);
            // What the client decodes whole, the broker takes.
            if fault.is_none() && !contains_u_tag(bytes) {
                prop_assert!(broker);
            }
        }
    }

    /// Whether a `U` value may be in there (the client reads `U`; RabbitMQ 3.10 refuses it).
    fn contains_u_tag(bytes: &[u8]) -> bool {
        bytes.contains(&b'U')
    }
}
