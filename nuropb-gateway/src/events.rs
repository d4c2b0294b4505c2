//! Mesh events to clients: the hub that fans each event out to the sockets and event streams
//! whose topic patterns match it, each through its own bounded queue.

use crate::mesh::MeshEvent;
use crate::topic;
use axum::extract::ws::Utf8Bytes;
use nuropb_proto::message::Object;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, RwLock};
use tokio::sync::{Notify, mpsc};

/// What waits to be written to a client.
#[derive(Clone, Debug)]
pub(crate) enum Outbound {
    /// A frame, as JSON text.
    Frame(Utf8Bytes),
    /// An event from the mesh: its frame, and its payload alone (for event streams).
    Event(Arc<EventOut>),
}

/// One event, serialized once for every client that gets it.
#[derive(Debug)]
pub(crate) struct EventOut {
    /// `{"type": "event", "payload": {...}}`.
    pub(crate) frame: Utf8Bytes,
    /// The payload: `{"topic", "event", "context", "trace_id"}`.
    pub(crate) payload: String,
}

/// Closes a client from anywhere: the hub, a request's task, the socket itself.
#[derive(Debug, Default)]
pub(crate) struct Closer {
    notify: Notify,
    code: AtomicU16,
}

/// The close code for a client that does not read (policy violation).
pub(crate) const SLOW_READER: u16 = 1008;

impl Closer {
    /// Asks for the client to be closed with `code` (the first code asked for wins).
    pub(crate) fn close(&self, code: u16) {
        let _ = self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.notify.notify_one();
    }

    /// Waits until a close is asked for; its code.
    pub(crate) async fn closed(&self) -> u16 {
        self.notify.notified().await;
        self.code.load(Ordering::Acquire)
    }
}

/// One client's way in: its queue, its user (for events with a target), its closer.
#[derive(Clone, Debug)]
pub(crate) struct Subscriber {
    pub(crate) outbox: mpsc::Sender<Outbound>,
    pub(crate) user_id: Option<String>,
    pub(crate) closer: Arc<Closer>,
}

/// Subscriptions by pattern, then by client id.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    patterns: RwLock<HashMap<String, HashMap<u64, Subscriber>>>,
}

#[derive(Serialize)]
struct Payload<'a> {
    topic: &'a str,
    event: &'a Value,
    context: &'a Object,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
}

/// Whether a context key carries a token, which never goes to other clients.
pub(crate) fn is_token_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("authorization") || key.eq_ignore_ascii_case("authorisation")
}

/// The users an event is for: a non-empty list of user ids as its target, else everyone.
fn audience(target: &Value) -> Option<Vec<&str>> {
    match target {
        Value::Array(users) if !users.is_empty() => {
            Some(users.iter().filter_map(Value::as_str).collect())
        }
        Value::String(user) => Some(vec![user.as_str()]),
        _ => None,
    }
}

impl Hub {
    /// Subscribes client `id` to `pattern`; false if it was already.
    pub(crate) fn subscribe(&self, pattern: &str, id: u64, subscriber: Subscriber) -> bool {
        let Ok(mut patterns) = self.patterns.write() else {
            return false;
        };
        patterns
            .entry(pattern.to_owned())
            .or_default()
            .insert(id, subscriber)
            .is_none()
    }

    /// Unsubscribes client `id` from `pattern`; false if it was not subscribed.
    pub(crate) fn unsubscribe(&self, pattern: &str, id: u64) -> bool {
        let Ok(mut patterns) = self.patterns.write() else {
            return false;
        };
        let Some(clients) = patterns.get_mut(pattern) else {
            return false;
        };
        let removed = clients.remove(&id).is_some();
        if clients.is_empty() {
            patterns.remove(pattern);
        }
        removed
    }

    /// Hands `event` to every client subscribed to a matching pattern, once each, in its
    /// audience; a client whose queue is full is closed as a slow reader. Token keys of the
    /// publisher's context are left out.
    pub(crate) fn publish(&self, mut event: MeshEvent) {
        let Ok(patterns) = self.patterns.read() else {
            return;
        };
        let matching: Vec<&HashMap<u64, Subscriber>> = patterns
            .iter()
            .filter(|(pattern, _)| topic::matches(pattern, &event.topic))
            .map(|(_, clients)| clients)
            .collect();
        if matching.is_empty() {
            return;
        }
        event.context.retain(|k, _| !is_token_key(k));
        let payload = Payload {
            topic: &event.topic,
            event: &event.event,
            context: &event.context,
            trace_id: event.trace_id.as_deref(),
        };
        let Ok(payload) = serde_json::to_string(&payload) else {
            return;
        };
        let out = Arc::new(EventOut {
            frame: format!(r#"{{"type":"event","payload":{payload}}}"#).into(),
            payload,
        });
        let audience = audience(&event.target);
        let mut delivered: Vec<u64> = Vec::new();
        let several = matching.len() > 1;
        for clients in matching {
            for (id, subscriber) in clients {
                if several {
                    if delivered.contains(id) {
                        continue;
                    }
                    delivered.push(*id);
                }
                if let Some(users) = &audience
                    && !subscriber
                        .user_id
                        .as_deref()
                        .is_some_and(|u| users.contains(&u))
                {
                    continue;
                }
                if subscriber
                    .outbox
                    .try_send(Outbound::Event(out.clone()))
                    .is_err()
                {
                    subscriber.closer.close(SLOW_READER);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(topic: &str, target: Value) -> MeshEvent {
        let mut context = Object::new();
        context.insert("Authorization".into(), json!("Bearer secret"));
        context.insert("user".into(), json!("u1"));
        MeshEvent {
            topic: topic.into(),
            event: json!({"n": 1}),
            target,
            context,
            trace_id: None,
        }
    }

    fn subscriber(user: Option<&str>, capacity: usize) -> (Subscriber, mpsc::Receiver<Outbound>) {
        let (outbox, rx) = mpsc::channel(capacity);
        let s = Subscriber {
            outbox,
            user_id: user.map(str::to_owned),
            closer: Arc::default(),
        };
        (s, rx)
    }

    fn text(out: Outbound) -> String {
        match out {
            Outbound::Event(e) => e.frame.as_str().to_owned(),
            Outbound::Frame(f) => f.as_str().to_owned(),
        }
    }

    #[test]
    fn one_copy_per_client_without_tokens_in_its_audience() {
        let hub = Hub::default();
        let (a, mut rx_a) = subscriber(Some("u1"), 8);
        let (b, mut rx_b) = subscriber(Some("u2"), 8);
        assert!(hub.subscribe("orders.#", 1, a.clone()));
        assert!(hub.subscribe("#", 1, a));
        assert!(hub.subscribe("orders.*", 2, b));
        hub.publish(event("orders.placed", Value::Null));
        let frame = text(rx_a.try_recv().unwrap());
        assert_eq!(
            frame,
            r#"{"type":"event","payload":{"topic":"orders.placed","event":{"n":1},"context":{"user":"u1"}}}"#
        );
        assert!(rx_a.try_recv().is_err(), "one copy, as one AMQP queue gets");
        assert!(rx_b.try_recv().is_ok());
        hub.publish(event("orders.placed", json!(["u2"])));
        assert!(rx_a.try_recv().is_err(), "not in the audience");
        assert!(rx_b.try_recv().is_ok());
        assert!(hub.unsubscribe("orders.*", 2));
        assert!(!hub.unsubscribe("orders.*", 2));
    }

    #[test]
    fn a_full_queue_closes_its_client() {
        let hub = Hub::default();
        let (a, _rx) = subscriber(None, 1);
        let closer = a.closer.clone();
        hub.subscribe("#", 1, a);
        hub.publish(event("x", Value::Null));
        hub.publish(event("x", Value::Null));
        assert_eq!(closer.code.load(Ordering::Acquire), SLOW_READER);
    }
}
