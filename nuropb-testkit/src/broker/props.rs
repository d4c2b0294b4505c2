//! Reading a publisher's content properties without decoding them.
//!
//! A published message's properties are forwarded byte for byte, so the broker only needs a few
//! of them — `expiration`, `user_id`, `delivery_mode`, and `headers` when a headers exchange or a
//! dead-letter exchange looks at them. [`scan`] checks the whole property list exactly as
//! `Properties::decode` does (the same tags, UTF-8 short strings, nesting depth, no trailing
//! bytes — a property test holds the two to the same verdict on any bytes) and hands out borrowed
//! slices, without allocating. The full decode happens only when a message needs it.

use nuropb_proto::amqp::properties::MAX_NESTING;

use nuropb_proto::amqp::properties::flag::*;

/// What the broker reads from a property list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Scanned<'a> {
    pub(crate) expiration: Option<&'a str>,
    pub(crate) user_id: Option<&'a str>,
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
        ttl: match s.expiration {
            None => Ok(None),
            Some(exp) => parse_expiration(exp)
                .map(Some)
                .map_err(|e| format!("invalid expiration '{exp}': {e}")),
        },
        user_id: s.user_id.map(str::to_owned),
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

/// The property list is not one `Properties::decode` accepts.
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

fn short_str<'a>(input: &mut &'a [u8]) -> Result<&'a str, Malformed> {
    let len = take(input, 1)?[0] as usize;
    std::str::from_utf8(take(input, len)?).map_err(|_| Malformed)
}

fn long_bytes<'a>(input: &mut &'a [u8]) -> Result<&'a [u8], Malformed> {
    let len = take(input, 4)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    take(input, len)
}

/// One typed value at nesting `depth`, as `Properties::decode` reads it.
fn value(input: &mut &[u8], depth: usize) -> Result<(), Malformed> {
    let tag = take(input, 1)?[0];
    match tag {
        b't' | b'b' | b'B' => take(input, 1).map(drop),
        b's' | b'U' | b'u' => take(input, 2).map(drop),
        b'I' | b'i' | b'f' => take(input, 4).map(drop),
        b'l' | b'L' | b'd' | b'T' => take(input, 8).map(drop),
        b'D' => take(input, 5).map(drop),
        b'S' | b'x' => long_bytes(input).map(drop),
        b'V' => Ok(()),
        b'F' => {
            if depth + 1 > MAX_NESTING {
                return Err(Malformed);
            }
            table(long_bytes(input)?, depth + 1)
        }
        b'A' => {
            if depth + 1 > MAX_NESTING {
                return Err(Malformed);
            }
            let mut inner = long_bytes(input)?;
            while !inner.is_empty() {
                value(&mut inner, depth + 1)?;
            }
            Ok(())
        }
        _ => Err(Malformed),
    }
}

/// The entries of a table whose values sit at `depth`.
fn table(mut entries: &[u8], depth: usize) -> Result<(), Malformed> {
    while !entries.is_empty() {
        short_str(&mut entries)?;
        value(&mut entries, depth)?;
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
    fn short<'a>(rest: &mut &'a [u8], flags: u16, bit: u16) -> Result<Option<&'a str>, Malformed> {
        if flags & bit == 0 {
            return Ok(None);
        }
        short_str(rest).map(Some)
    }
    short(&mut rest, flags, CONTENT_TYPE)?;
    short(&mut rest, flags, CONTENT_ENCODING)?;
    if flags & HEADERS != 0 {
        table(long_bytes(&mut rest)?, 1)?;
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
                expiration: Some("60000"),
                user_id: Some("guest"),
                delivery_mode: Some(2),
                has_headers: true,
            }
        );
        assert_eq!(scan(&[0, 0]), Ok(Scanned::default()));
    }

    proptest! {
        #[test]
        fn agrees_with_the_decoder_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            prop_assert_eq!(scan(&bytes).is_ok(), Properties::decode(&bytes).is_ok());
        }

        #[test]
        fn agrees_with_the_decoder_on_mutated_lists(
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
            prop_assert_eq!(scan(bytes).is_ok(), Properties::decode(bytes).is_ok());
        }
    }

    #[test]
    fn nesting_limit_is_the_decoders() {
        // Arrays nested exactly to the limit pass, one more fails — for both.
        for depth in [MAX_NESTING - 1, MAX_NESTING] {
            let mut v = vec![b'V'];
            for _ in 0..depth {
                let mut a = vec![b'A'];
                a.extend_from_slice(&(v.len() as u32).to_be_bytes());
                a.extend_from_slice(&v);
                v = a;
            }
            let mut t = vec![1, b'k'];
            t.extend_from_slice(&v);
            let mut bytes = HEADERS.to_be_bytes().to_vec();
            bytes.extend_from_slice(&(t.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&t);
            assert_eq!(
                scan(&bytes).is_ok(),
                Properties::decode(&bytes).is_ok(),
                "depth {depth}"
            );
        }
    }
}
