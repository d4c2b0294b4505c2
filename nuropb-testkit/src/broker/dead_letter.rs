//! Dead-lettering, as RabbitMQ 3.10's `rabbit_dead_letter` does it.
//!
//! A message rejected without requeue, expired at the head of its queue, or dropped from a full
//! one is re-published to the queue's `x-dead-letter-exchange` with its `x-dead-letter-routing-key`
//! (or its own routing key). On the way its headers gain an `x-death` entry — `count`, `reason`,
//! `queue`, `time`, `exchange`, `routing-keys` and, when it had one, `original-expiration` — and,
//! on its first death, `x-first-death-exchange`, `-queue` and `-reason`; its `expiration` is
//! removed; its header table comes out sorted by key, as RabbitMQ's `set_table_value` leaves it.
//! A message that dies again in the same queue for the same reason has that entry's `count`
//! raised and moved to the front. Automatic cycles (a message coming back to a queue it expired or
//! overflowed from, with no rejection in between) are dropped.
//!
//! Everything else in the property list goes on byte for byte, readable by the client or not.
//!
//! One difference remains: field tables nested in headers are written in key order (they are
//! `amq-protocol` `FieldTable`s), so the keys of an `x-death` entry come out alphabetically
//! where RabbitMQ writes a first death's entry in the order above. Clients read them by name.

use crate::broker::Broker;
use crate::broker::message::{DeathReason, Entry, Message};
use crate::broker::queue::QueueId;
use crate::broker::raw_props::{self, RawProperties};
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use nuropb_proto::amqp::Headers;
use nuropb_proto::amqp::properties::flag::{DELIVERY_MODE, EXPIRATION, HEADERS};
use std::sync::Arc;
use std::time::Instant;

/// A message on its way to a dead-letter exchange, with what it needs from its dead queue.
#[derive(Debug)]
pub(crate) struct Dead {
    vhost: usize,
    queue: String,
    exchange: String,
    routing_key: Option<String>,
    entry: Entry,
    reason: DeathReason,
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

fn text(v: Option<&AMQPValue>) -> Option<&[u8]> {
    match v? {
        AMQPValue::LongString(s) => Some(s.as_bytes()),
        AMQPValue::ShortString(s) => Some(s.as_str().as_bytes()),
        _ => None,
    }
}

/// A header's value on its way out: as it came, or set here.
enum Value<'a> {
    Raw(&'a [u8]),
    Set(AMQPValue),
}

/// The message as it leaves for the dead-letter exchange. Its properties are rewritten at the
/// byte level: headers that the client's decoder cannot read (nested deeper than it reads, keys
/// that are not UTF-8) and the other properties go on as they came, as RabbitMQ forwards them.
pub(crate) fn dead_lettered(
    original: &Message,
    reason: DeathReason,
    queue: &str,
    dlx: &str,
    dlrk: Option<&str>,
    time: u64,
) -> Message {
    // Checked at publish (or written by the broker), so it splits.
    let mut raw = RawProperties::split(&original.raw_properties).unwrap_or_default();
    let mut headers: Vec<(Vec<u8>, Value)> = raw
        .get(HEADERS)
        .map(|table| {
            raw_props::entries(table.get(4..).unwrap_or_default())
                .into_iter()
                .map(|(k, v)| (k.to_vec(), Value::Raw(v)))
                .collect()
        })
        .unwrap_or_default();
    if dlrk.is_some() {
        headers.retain(|(k, _)| k != b"CC");
    }
    let mut info = FieldTable::default();
    info.insert("reason".into(), long(reason.as_str()));
    info.insert("queue".into(), long(queue));
    info.insert("time".into(), AMQPValue::Timestamp(time));
    info.insert("exchange".into(), long(&original.exchange));
    info.insert(
        "routing-keys".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![long(&original.routing_key)])),
    );
    if let Some(exp) = raw.get(EXPIRATION) {
        let exp = exp.get(1..).unwrap_or_default();
        info.insert(
            "original-expiration".into(),
            AMQPValue::LongString(LongString::from(exp.to_vec())),
        );
    }
    let mut first = info.clone();
    first.insert("count".into(), AMQPValue::LongLongInt(1));
    let set = |headers: &mut Vec<(Vec<u8>, Value)>, k: &str, v: AMQPValue| match headers
        .iter_mut()
        .find(|(key, _)| key == k.as_bytes())
    {
        Some(slot) => slot.1 = Value::Set(v),
        None => headers.push((k.as_bytes().to_vec(), Value::Set(v))),
    };
    let death = headers
        .iter()
        .find(|(k, _)| k == b"x-death")
        .map(|(_, v)| match v {
            Value::Raw(bytes) => raw_props::decode_value(bytes),
            Value::Set(v) => Some(v.clone()),
        });
    match death {
        None => {
            set(&mut headers, "x-first-death-reason", long(reason.as_str()));
            set(&mut headers, "x-first-death-queue", long(queue));
            set(
                &mut headers,
                "x-first-death-exchange",
                long(&original.exchange),
            );
            let deaths = vec![AMQPValue::FieldTable(first)];
            set(
                &mut headers,
                "x-death",
                AMQPValue::FieldArray(deaths.into()),
            );
        }
        Some(Some(AMQPValue::FieldArray(deaths))) => {
            let mut deaths: Vec<AMQPValue> = deaths.as_slice().to_vec();
            let matching = deaths.iter().position(|d| match d {
                AMQPValue::FieldTable(t) => {
                    text(t.inner().get("queue")) == Some(queue.as_bytes())
                        && text(t.inner().get("reason")) == Some(reason.as_str().as_bytes())
                }
                _ => false,
            });
            let entry = match matching.map(|i| deaths.remove(i)) {
                Some(AMQPValue::FieldTable(mut t)) => {
                    let n = match t.inner().get("count") {
                        Some(AMQPValue::LongLongInt(n)) => n.saturating_add(1),
                        _ => 1,
                    };
                    t.insert("count".into(), AMQPValue::LongLongInt(n));
                    t
                }
                _ => first,
            };
            deaths.insert(0, AMQPValue::FieldTable(entry));
            set(
                &mut headers,
                "x-death",
                AMQPValue::FieldArray(deaths.into()),
            );
        }
        Some(_) => {
            let deaths = vec![AMQPValue::FieldTable(first)];
            set(
                &mut headers,
                "x-death",
                AMQPValue::FieldArray(deaths.into()),
            );
        }
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut table = vec![0; 4];
    for (key, value) in &headers {
        table.push(key.len() as u8);
        table.extend_from_slice(key);
        match value {
            Value::Raw(bytes) => table.extend_from_slice(bytes),
            Value::Set(v) => table.extend_from_slice(&raw_props::encode_value(v)),
        }
    }
    let len = (table.len() - 4) as u32;
    table[..4].copy_from_slice(&len.to_be_bytes());
    raw.set(HEADERS, Some(&table));
    raw.set(EXPIRATION, None);
    let persistent = raw.get(DELIVERY_MODE) == Some(&[2]);
    Message {
        exchange: dlx.to_owned(),
        routing_key: dlrk.unwrap_or(&original.routing_key).to_owned(),
        raw_properties: raw.encode(),
        body: original.body.clone(),
        ttl: None,
        persistent,
    }
}

/// RabbitMQ's `is_cycle`: the message died in `queue` before, and every death since (that one
/// included) was automatic — none a rejection.
fn is_cycle(queue: &str, headers: Option<&Headers>) -> bool {
    let Some(AMQPValue::FieldArray(deaths)) = headers.and_then(|h| h.get("x-death")) else {
        return false;
    };
    let deaths = deaths.as_slice();
    let Some(at) = deaths.iter().position(|d| match d {
        AMQPValue::FieldTable(t) => text(t.inner().get("queue")) == Some(queue.as_bytes()),
        _ => false,
    }) else {
        return false;
    };
    deaths[..=at].iter().all(|d| match d {
        AMQPValue::FieldTable(t) => text(t.inner().get("reason")) != Some(b"rejected"),
        _ => false,
    })
}

impl Broker {
    /// A message leaves queue `q` for `reason`: dead-lettered when the queue has a dead-letter
    /// exchange, dropped otherwise.
    pub(crate) fn kill(&mut self, q: QueueId, entry: Entry, reason: DeathReason) {
        let Some(queue) = self.queues.get(&q) else {
            return;
        };
        let Some(exchange) = queue.args.dead_letter_exchange.clone() else {
            return;
        };
        self.dead.push_back(Dead {
            vhost: queue.vhost,
            queue: queue.name.clone(),
            exchange,
            routing_key: queue.args.dead_letter_routing_key.clone(),
            entry,
            reason,
        });
    }

    /// Publishes pending dead letters to their exchanges. Each may make room in a full queue
    /// and so kill another message; the work list ends because a message never re-enters a queue
    /// it died in automatically.
    pub(crate) fn process_dead_letters(&mut self, now: Instant) {
        let mut targets = Vec::new();
        while let Some(d) = self.dead.pop_front() {
            if !self.vhosts[d.vhost].exchanges.contains_key(&d.exchange) {
                continue; // RabbitMQ drops a dead letter whose exchange is missing.
            }
            let msg = dead_lettered(
                &d.entry.msg,
                d.reason,
                &d.queue,
                &d.exchange,
                d.routing_key.as_deref(),
                self.wall_clock(now),
            );
            self.route(
                d.vhost,
                &msg.exchange,
                &msg.routing_key,
                &msg.raw_properties,
                &mut targets,
            );
            if d.reason != DeathReason::Rejected {
                let props = msg.properties();
                let headers = props.headers.as_ref();
                let queues = &self.queues;
                targets.retain(|t| queues.get(t).is_some_and(|q| !is_cycle(&q.name, headers)));
            }
            let msg = Arc::new(msg);
            for &t in &targets {
                self.enqueue(t, Arc::clone(&msg), now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuropb_proto::amqp::Properties;

    fn message(headers: Option<Headers>, expiration: Option<&str>) -> Message {
        let properties = Properties {
            headers,
            expiration: expiration.map(Into::into),
            ..Default::default()
        };
        let mut raw_properties = Vec::new();
        properties.encode(&mut raw_properties);
        Message {
            exchange: "nuropb-rpc-exchange".into(),
            routing_key: "svc".into(),
            raw_properties,
            body: b"{}".to_vec(),
            ttl: None,
            persistent: false,
        }
    }

    fn death(m: &Message, i: usize) -> FieldTable {
        let props = m.properties();
        let Some(AMQPValue::FieldArray(a)) = props.headers.as_ref().unwrap().get("x-death") else {
            panic!("no x-death");
        };
        match &a.as_slice()[i] {
            AMQPValue::FieldTable(t) => t.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn first_death_as_in_the_capture() {
        let mut h = Headers::default();
        h.insert("nuropb_protocol", long("0.1.1"));
        h.insert("nuropb_version", long("0.1.8"));
        h.insert("nuropb_type", long("command"));
        h.insert("trace_id", long("t"));
        h.insert("encrypted", long(""));
        let m = message(Some(h), Some("1800000"));
        let d = dead_lettered(
            &m,
            DeathReason::Rejected,
            "nuropb-research-svc-sq",
            "nuropb-dl-exchange",
            None,
            1_795_000_000,
        );
        let props = d.properties();
        let keys: Vec<&str> = props.headers.as_ref().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "encrypted",
                "nuropb_protocol",
                "nuropb_type",
                "nuropb_version",
                "trace_id",
                "x-death",
                "x-first-death-exchange",
                "x-first-death-queue",
                "x-first-death-reason"
            ]
        );
        let x = death(&d, 0);
        let x = x.inner();
        assert_eq!(x.get("count"), Some(&AMQPValue::LongLongInt(1)));
        assert_eq!(x.get("reason"), Some(&long("rejected")));
        assert_eq!(x.get("queue"), Some(&long("nuropb-research-svc-sq")));
        assert_eq!(x.get("time"), Some(&AMQPValue::Timestamp(1_795_000_000)));
        assert_eq!(x.get("exchange"), Some(&long("nuropb-rpc-exchange")));
        assert_eq!(
            x.get("routing-keys"),
            Some(&AMQPValue::FieldArray(vec![long("svc")].into()))
        );
        assert_eq!(x.get("original-expiration"), Some(&long("1800000")));
        assert_eq!(props.expiration, None);
        assert_eq!(d.exchange, "nuropb-dl-exchange");
        assert_eq!(d.routing_key, "svc");
    }

    #[test]
    fn second_death_counts_and_cycles_are_seen() {
        let m = message(None, None);
        let once = dead_lettered(&m, DeathReason::Expired, "a", "dlx", Some("b"), 1);
        assert_eq!(once.routing_key, "b");
        let twice = dead_lettered(&once, DeathReason::Expired, "b", "dlx", Some("a"), 2);
        let thrice = dead_lettered(&twice, DeathReason::Expired, "a", "dlx", Some("b"), 3);
        assert_eq!(
            death(&thrice, 0).inner().get("count"),
            Some(&AMQPValue::LongLongInt(2))
        );
        assert_eq!(death(&thrice, 0).inner().get("queue"), Some(&long("a")));
        assert_eq!(death(&thrice, 1).inner().get("queue"), Some(&long("b")));
        let p = twice.properties();
        let h = p.headers.as_ref();
        assert!(is_cycle("a", h), "a -> b -> back to a, all expiries");
        assert!(!is_cycle("c", h));
        let rejected = dead_lettered(&once, DeathReason::Rejected, "b", "dlx", Some("a"), 2);
        assert!(!is_cycle("a", rejected.properties().headers.as_ref()));
        // First-death headers are written once.
        let p = thrice.properties();
        let h = p.headers.as_ref().unwrap();
        assert_eq!(h.get("x-first-death-queue"), Some(&long("a")));
    }
}
