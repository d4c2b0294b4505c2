//! Declaration arguments: validating a new queue's arguments and checking that a redeclaration is
//! equivalent, with RabbitMQ's reply texts (checked against RabbitMQ 3.10).

use crate::broker::error::AmqpError;
use crate::broker::queue::{Overflow, QueueArgs};
use amq_protocol::types::{AMQPValue, FieldTable};
use std::fmt::Display;

/// The queue arguments RabbitMQ validates and compares on redeclaration, in its order.
pub(crate) const QUEUE_ARGS: [&str; 18] = [
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-queue-type",
    "x-quorum-initial-group-size",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
    "x-initial-cluster-size",
    "x-queue-leader-locator",
];

/// The exchange arguments compared on redeclaration.
pub(crate) const EXCHANGE_ARGS: [&str; 1] = ["alternate-exchange"];

/// RabbitMQ's name for a field value's type.
pub(crate) fn type_name(v: &AMQPValue) -> &'static str {
    match v {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) => "shortstr",
        AMQPValue::LongString(_) => "longstr",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::Void => "void",
    }
}

/// An integer field value (RabbitMQ's integer argument types).
pub(crate) fn int_value(v: &AMQPValue) -> Option<i64> {
    match *v {
        AMQPValue::ShortShortInt(n) => Some(n as i64),
        AMQPValue::ShortShortUInt(n) => Some(n as i64),
        AMQPValue::ShortInt(n) => Some(n as i64),
        AMQPValue::ShortUInt(n) => Some(n as i64),
        AMQPValue::LongInt(n) => Some(n as i64),
        AMQPValue::LongUInt(n) => Some(n as i64),
        AMQPValue::LongLongInt(n) => Some(n),
        _ => None,
    }
}

/// A value as Erlang's `~s`/`~p` would print it in these messages.
fn value_text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::Float(f) => f.to_string(),
        AMQPValue::Double(f) => f.to_string(),
        AMQPValue::Timestamp(t) => t.to_string(),
        AMQPValue::Void => "undefined".into(),
        other => match int_value(other) {
            Some(n) => n.to_string(),
            None => format!("{other:?}"),
        },
    }
}

fn type_class(v: &AMQPValue) -> &'static str {
    match v {
        v if int_value(v).is_some() => "int",
        AMQPValue::DecimalValue(_) => "int",
        AMQPValue::Float(_) | AMQPValue::Double(_) => "float",
        other => type_name(other),
    }
}

/// RabbitMQ's `assert_field_equivalence`.
pub(crate) fn assert_field<T: Display + PartialEq>(
    current: T,
    received: T,
    resource: &str,
    field: &str,
) -> Result<(), AmqpError> {
    if current == received {
        return Ok(());
    }
    Err(AmqpError::precondition_failed(format_args!(
        "inequivalent arg '{field}' for {resource}: received '{received}' but current is \
         '{current}'"
    )))
}

/// RabbitMQ's `assert_args_equivalence` over `keys`.
pub(crate) fn assert_args(
    current: &FieldTable,
    received: &FieldTable,
    resource: &str,
    keys: &[&str],
) -> Result<(), AmqpError> {
    for &key in keys {
        let (a, b) = (current.inner().get(key), received.inner().get(key));
        match (a, b) {
            (None, None) => {}
            (Some(a), Some(b)) => {
                let same = type_class(a) == type_class(b)
                    && match (int_value(a), int_value(b)) {
                        (Some(x), Some(y)) => x == y,
                        _ => a == b,
                    };
                if !same {
                    assert_field(value_text(a), value_text(b), resource, key)?;
                }
            }
            (a, b) => {
                let val = |v: Option<&AMQPValue>| match v {
                    None => "none".to_owned(),
                    Some(v) => format!("the value '{}' of type '{}'", value_text(v), type_name(v)),
                };
                return Err(AmqpError::precondition_failed(format_args!(
                    "inequivalent arg '{key}' for {resource}: received {} but current is {}",
                    val(b),
                    val(a)
                )));
            }
        }
    }
    Ok(())
}

const MAX_EXPIRY: i64 = 4_294_967_295;

fn check_int(v: &AMQPValue) -> Result<i64, String> {
    int_value(v).ok_or_else(|| format!("\"expected integer, got {}\"", type_name(v)))
}

fn check_non_neg(v: &AMQPValue) -> Result<i64, String> {
    let n = check_int(v)?;
    if n < 0 {
        return Err(format!("{{value_negative,{n}}}"));
    }
    Ok(n)
}

fn check_expiry(n: i64) -> Result<i64, String> {
    if n < 0 {
        Err(format!("{{value_negative,{n}}}"))
    } else if n > MAX_EXPIRY {
        Err(format!("{{value_too_large,{n},{MAX_EXPIRY}}}"))
    } else {
        Ok(n)
    }
}

fn long_string(v: &AMQPValue) -> Result<String, String> {
    match v {
        AMQPValue::LongString(s) => Ok(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        other => Err(format!("{{unacceptable_type,{}}}", type_name(other))),
    }
}

/// Validates the arguments of a queue being created, as RabbitMQ does, and extracts what the
/// broker acts on. Unknown arguments are kept but ignored, as on RabbitMQ.
pub(crate) fn queue_args(args: &FieldTable, resource: &str) -> Result<QueueArgs, AmqpError> {
    let t = args.inner();
    if let Some(v) = t.get("x-dead-letter-exchange")
        && !matches!(v, AMQPValue::LongString(_))
    {
        return Err(AmqpError::precondition_failed(format_args!(
            "invalid type '{}' for arg 'x-dead-letter-exchange' in {resource}",
            type_name(v)
        )));
    }
    let invalid = |key: &str, err: String| {
        AmqpError::precondition_failed(format_args!("invalid arg '{key}' for {resource}: {err}"))
    };
    let mut out = QueueArgs::default();
    for key in QUEUE_ARGS {
        let Some(v) = t.get(key) else { continue };
        let checked: Result<(), String> = match key {
            "x-expires" => check_int(v).and_then(|n| {
                if n == 0 {
                    Err(format!("{{value_zero,{n}}}"))
                } else {
                    check_expiry(n).map(drop)
                }
            }),
            "x-message-ttl" => check_non_neg(v).and_then(check_expiry).map(|n| {
                out.message_ttl = Some(n as u64);
            }),
            "x-dead-letter-exchange" => long_string(v).map(|s| {
                out.dead_letter_exchange = Some(s);
            }),
            "x-dead-letter-routing-key" => long_string(v).and_then(|s| {
                if t.contains_key("x-dead-letter-exchange") {
                    out.dead_letter_routing_key = Some(s);
                    Ok(())
                } else {
                    Err("routing_key_but_no_dlx_defined".into())
                }
            }),
            "x-max-length" => check_non_neg(v).map(|n| out.max_length = Some(n as u64)),
            "x-max-length-bytes" => check_non_neg(v).map(|n| out.max_length_bytes = Some(n as u64)),
            "x-max-in-memory-length" | "x-max-in-memory-bytes" => check_non_neg(v).map(drop),
            "x-max-priority" => check_non_neg(v).and_then(|n| {
                if n > 255 {
                    Err(format!("{{value_too_large,{n},255}}"))
                } else {
                    Ok(())
                }
            }),
            "x-overflow" => long_string(v).and_then(|s| {
                out.overflow = match s.as_str() {
                    "drop-head" => Overflow::DropHead,
                    "reject-publish" => Overflow::RejectPublish,
                    "reject-publish-dlx" => Overflow::RejectPublishDlx,
                    _ => return Err("invalid_overflow".into()),
                };
                Ok(())
            }),
            _ => Ok(()),
        };
        checked.map_err(|e| invalid(key, e))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert((*k).into(), v.clone());
        }
        t
    }

    const Q: &str = "queue 'exp-q2' in vhost '/'";

    #[test]
    fn invalid_arguments_read_as_on_rabbitmq() {
        let err = |t: FieldTable| queue_args(&t, Q).unwrap_err().text;
        assert_eq!(
            err(table(&[("x-message-ttl", AMQPValue::LongInt(-1))])),
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'exp-q2' in vhost '/': \
             {value_negative,-1}"
        );
        assert_eq!(
            err(table(&[(
                "x-message-ttl",
                AMQPValue::LongString("abc".into())
            )])),
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'exp-q2' in vhost '/': \
             \"expected integer, got longstr\""
        );
        assert_eq!(
            err(table(&[("x-dead-letter-exchange", AMQPValue::LongInt(5))])),
            "PRECONDITION_FAILED - invalid type 'signedint' for arg 'x-dead-letter-exchange' in \
             queue 'exp-q2' in vhost '/'"
        );
        assert_eq!(
            err(table(&[(
                "x-dead-letter-routing-key",
                AMQPValue::LongString("a".into())
            )])),
            "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue 'exp-q2' in \
             vhost '/': routing_key_but_no_dlx_defined"
        );
        assert_eq!(
            err(table(&[(
                "x-overflow",
                AMQPValue::LongString("foo".into())
            )])),
            "PRECONDITION_FAILED - invalid arg 'x-overflow' for queue 'exp-q2' in vhost '/': \
             invalid_overflow"
        );
        let ok = queue_args(
            &table(&[
                ("x-message-ttl", AMQPValue::ShortShortUInt(5)),
                (
                    "x-dead-letter-exchange",
                    AMQPValue::LongString("dlx".into()),
                ),
                ("x-max-length", AMQPValue::LongLongInt(3)),
            ]),
            Q,
        )
        .unwrap();
        assert_eq!(ok.message_ttl, Some(5));
        assert_eq!(ok.dead_letter_exchange.as_deref(), Some("dlx"));
        assert_eq!(ok.max_length, Some(3));
    }

    #[test]
    fn equivalence_texts() {
        let q = "queue 'exp-q1' in vhost '/'";
        let none = FieldTable::default();
        let ttl = table(&[("x-message-ttl", AMQPValue::LongInt(1000))]);
        assert_eq!(
            assert_args(&none, &ttl, q, &QUEUE_ARGS).unwrap_err().text,
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'exp-q1' in vhost \
             '/': received the value '1000' of type 'signedint' but current is none"
        );
        let ttl_long = table(&[("x-message-ttl", AMQPValue::LongLongInt(1000))]);
        assert!(
            assert_args(&ttl, &ttl_long, q, &QUEUE_ARGS).is_ok(),
            "int classes"
        );
        let ttl2 = table(&[("x-message-ttl", AMQPValue::LongInt(2000))]);
        assert_eq!(
            assert_args(&ttl, &ttl2, q, &QUEUE_ARGS).unwrap_err().text,
            "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue 'exp-q1' in vhost \
             '/': received '2000' but current is '1000'"
        );
        let unknown = table(&[("x-foo", AMQPValue::LongInt(1))]);
        assert!(assert_args(&none, &unknown, q, &QUEUE_ARGS).is_ok());
        assert_eq!(
            assert_field(false, true, q, "durable").unwrap_err().text,
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'exp-q1' in vhost '/': \
             received 'true' but current is 'false'"
        );
    }
}
