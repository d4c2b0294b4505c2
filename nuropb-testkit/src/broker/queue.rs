//! A queue: its declaration, its ready messages in order, its consumers.
//!
//! Messages carry a per-queue sequence number; a requeued message goes back to the position its
//! number gives it, as in RabbitMQ's classic queues, so redelivery keeps publication order. TTL is
//! enforced at the head only (RabbitMQ's rule): an expired message behind a live one waits.
//! Length limits count ready messages only, not unacknowledged ones.

use crate::broker::ConnectionId;
use crate::broker::message::{Entry, Message};
use amq_protocol::types::FieldTable;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A queue's identity, never reused within one broker (a redeclared name gets a new id).
pub(crate) type QueueId = u64;
/// A consumer's identity, never reused within one broker.
pub(crate) type ConsumerId = u64;

/// What happens when a queue is full (`x-overflow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overflow {
    /// Drop (and dead-letter) the oldest message: the default.
    DropHead,
    /// Refuse the new message.
    RejectPublish,
    /// Refuse the new message and dead-letter it.
    RejectPublishDlx,
}

/// The queue arguments the broker acts on, parsed from `queue.declare`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct QueueArgs {
    /// `x-message-ttl`, milliseconds.
    pub(crate) message_ttl: Option<u64>,
    /// `x-dead-letter-exchange` (`""` is the default exchange).
    pub(crate) dead_letter_exchange: Option<String>,
    /// `x-dead-letter-routing-key`.
    pub(crate) dead_letter_routing_key: Option<String>,
    /// `x-max-length`.
    pub(crate) max_length: Option<u64>,
    /// `x-max-length-bytes`.
    pub(crate) max_length_bytes: Option<u64>,
    /// `x-overflow`.
    pub(crate) overflow: Overflow,
}

impl Default for QueueArgs {
    fn default() -> Self {
        QueueArgs {
            message_ttl: None,
            dead_letter_exchange: None,
            dead_letter_routing_key: None,
            max_length: None,
            max_length_bytes: None,
            overflow: Overflow::DropHead,
        }
    }
}

/// The effective length limits: the queue's arguments capped by the broker's configuration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) messages: usize,
    pub(crate) bytes: usize,
}

/// The outcome of [`Queue::push`].
#[derive(Debug)]
pub(crate) enum Pushed {
    /// The message is in; these were dropped from the head to make room.
    Accepted(Vec<Entry>),
    /// The queue is full and refuses new messages; the message is handed back.
    Refused(Arc<Message>),
}

/// One queue.
#[derive(Debug)]
pub(crate) struct Queue {
    /// The virtual host it lives in (index).
    pub(crate) vhost: usize,
    /// Its name.
    pub(crate) name: String,
    /// Declared durable: survives [`Broker::restart`](crate::broker::Broker::restart).
    pub(crate) durable: bool,
    /// Declared auto-delete: deleted when its last consumer goes (once it has had one).
    pub(crate) auto_delete: bool,
    /// The connection that declared it exclusive.
    pub(crate) exclusive_owner: Option<ConnectionId>,
    /// The arguments as declared, for equivalence checks and introspection.
    pub(crate) arguments: FieldTable,
    /// The arguments the broker acts on.
    pub(crate) args: QueueArgs,
    messages: VecDeque<Entry>,
    bytes: usize,
    next_seq: u64,
    /// Consumers in round-robin order: the next to try is at the front.
    pub(crate) consumers: VecDeque<ConsumerId>,
    /// Whether the one consumer holds it exclusively.
    pub(crate) exclusive_consumer: bool,
    /// Whether it ever had a consumer (auto-delete applies only then).
    pub(crate) had_consumer: bool,
    /// Messages delivered from it and not yet settled.
    pub(crate) unacked: usize,
    /// Whether it waits in the broker's dispatch list.
    pub(crate) dirty: bool,
}

impl Queue {
    pub(crate) fn new(
        vhost: usize,
        name: String,
        durable: bool,
        auto_delete: bool,
        exclusive_owner: Option<ConnectionId>,
        arguments: FieldTable,
        args: QueueArgs,
    ) -> Self {
        Queue {
            vhost,
            name,
            durable,
            auto_delete,
            exclusive_owner,
            arguments,
            args,
            messages: VecDeque::new(),
            bytes: 0,
            next_seq: 0,
            consumers: VecDeque::new(),
            exclusive_consumer: false,
            had_consumer: false,
            unacked: 0,
            dirty: false,
        }
    }

    /// Ready messages.
    pub(crate) fn ready(&self) -> usize {
        self.messages.len()
    }

    /// Body bytes of the ready messages.
    pub(crate) fn ready_bytes(&self) -> usize {
        self.bytes
    }

    /// The ready messages, head first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.messages.iter()
    }

    /// The effective limits under a broker-wide bound.
    pub(crate) fn limits(&self, max_messages: usize, max_bytes: usize) -> Limits {
        let cap = |arg: Option<u64>, bound: usize| {
            arg.map_or(bound, |a| {
                usize::try_from(a).unwrap_or(usize::MAX).min(bound)
            })
        };
        Limits {
            messages: cap(self.args.max_length, max_messages),
            bytes: cap(self.args.max_length_bytes, max_bytes),
        }
    }

    /// Appends a newly routed message, applying TTL and the length limits.
    pub(crate) fn push(&mut self, msg: Arc<Message>, now: Instant, limits: Limits) -> Pushed {
        let size = msg.body.len();
        let full = self.messages.len() >= limits.messages
            || self.bytes.saturating_add(size) > limits.bytes;
        if full && self.args.overflow != Overflow::DropHead {
            return Pushed::Refused(msg);
        }
        let ttl = match (self.args.message_ttl, msg.ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let expires_at = ttl.and_then(|ms| now.checked_add(Duration::from_millis(ms)));
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += size;
        self.messages.push_back(Entry {
            msg,
            seq,
            redelivered: false,
            expires_at,
        });
        Pushed::Accepted(self.drop_over(limits))
    }

    /// Drops from the head until the queue is within `limits` (drop-head queues only).
    pub(crate) fn drop_over(&mut self, limits: Limits) -> Vec<Entry> {
        let mut dropped = Vec::new();
        if self.args.overflow != Overflow::DropHead {
            return dropped;
        }
        while self.messages.len() > limits.messages || self.bytes > limits.bytes {
            match self.pop() {
                Some(e) => dropped.push(e),
                None => break,
            }
        }
        dropped
    }

    /// Puts a delivered message back at its original position, flagged redelivered.
    pub(crate) fn requeue(&mut self, mut entry: Entry) {
        entry.redelivered = true;
        self.bytes += entry.msg.body.len();
        // Usually the requeued message is older than everything ready: it goes at the front.
        let at = self.messages.partition_point(|e| e.seq < entry.seq);
        self.messages.insert(at, entry);
    }

    /// Takes the head message.
    pub(crate) fn pop(&mut self) -> Option<Entry> {
        let e = self.messages.pop_front()?;
        self.bytes -= e.msg.body.len();
        Some(e)
    }

    /// Takes the head message if it has expired at `now`. `strictly`: only if it expired before
    /// `now` — a message whose TTL ends right now (TTL 0) may still go to a waiting consumer.
    pub(crate) fn pop_expired(&mut self, now: Instant, strictly: bool) -> Option<Entry> {
        match self.messages.front()?.expires_at {
            Some(at) if at < now || (at == now && !strictly) => self.pop(),
            _ => None,
        }
    }

    /// When the head message expires.
    pub(crate) fn head_expiry(&self) -> Option<Instant> {
        self.messages.front()?.expires_at
    }

    /// Removes every ready message; returns how many there were.
    pub(crate) fn purge(&mut self) -> usize {
        let n = self.messages.len();
        self.messages.clear();
        self.bytes = 0;
        n
    }

    /// Keeps only persistent messages (what a durable queue recovers after a restart).
    pub(crate) fn keep_persistent(&mut self) {
        self.messages.retain(|e| e.msg.persistent);
        self.bytes = self.messages.iter().map(|e| e.msg.body.len()).sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str, ttl: Option<u64>) -> Arc<Message> {
        Arc::new(Message {
            exchange: String::new(),
            routing_key: "q".into(),
            raw_properties: vec![0, 0],
            body: body.as_bytes().to_vec(),
            ttl,
            persistent: false,
        })
    }

    fn queue(args: QueueArgs) -> Queue {
        Queue::new(
            0,
            "q".into(),
            false,
            false,
            None,
            FieldTable::default(),
            args,
        )
    }

    const NO_LIMIT: Limits = Limits {
        messages: usize::MAX,
        bytes: usize::MAX,
    };

    fn bodies(q: &Queue) -> Vec<String> {
        q.iter()
            .map(|e| String::from_utf8(e.msg.body.clone()).unwrap())
            .collect()
    }

    #[test]
    fn requeued_messages_return_to_their_place() {
        let now = Instant::now();
        let mut q = queue(QueueArgs::default());
        for b in ["a", "b", "c", "d"] {
            q.push(msg(b, None), now, NO_LIMIT);
        }
        let a = q.pop().unwrap();
        let b = q.pop().unwrap();
        let c = q.pop().unwrap();
        q.requeue(b);
        q.requeue(c);
        q.requeue(a);
        assert_eq!(bodies(&q), ["a", "b", "c", "d"]);
        assert!(q.iter().take(3).all(|e| e.redelivered));
        assert!(!q.iter().nth(3).unwrap().redelivered);
    }

    #[test]
    fn drop_head_and_reject_publish() {
        let now = Instant::now();
        let limits = Limits {
            messages: 2,
            bytes: usize::MAX,
        };
        let mut q = queue(QueueArgs::default());
        for b in ["a", "b"] {
            assert!(
                matches!(q.push(msg(b, None), now, limits), Pushed::Accepted(d) if d.is_empty())
            );
        }
        match q.push(msg("c", None), now, limits) {
            Pushed::Accepted(dropped) => assert_eq!(dropped[0].msg.body, b"a"),
            other => panic!("{other:?}"),
        }
        assert_eq!(bodies(&q), ["b", "c"]);

        let mut q = queue(QueueArgs {
            overflow: Overflow::RejectPublish,
            ..QueueArgs::default()
        });
        q.push(msg("a", None), now, limits);
        q.push(msg("b", None), now, limits);
        assert!(matches!(
            q.push(msg("c", None), now, limits),
            Pushed::Refused(_)
        ));
        assert_eq!(bodies(&q), ["a", "b"]);
    }

    #[test]
    fn byte_limit_drops_until_it_fits() {
        let now = Instant::now();
        let limits = Limits {
            messages: usize::MAX,
            bytes: 5,
        };
        let mut q = queue(QueueArgs::default());
        q.push(msg("abc", None), now, limits);
        match q.push(msg("defg", None), now, limits) {
            Pushed::Accepted(dropped) => assert_eq!(dropped.len(), 1),
            other => panic!("{other:?}"),
        }
        assert_eq!(q.ready_bytes(), 4);
    }

    #[test]
    fn ttl_is_the_smaller_of_queue_and_message_and_expires_at_the_head() {
        let now = Instant::now();
        let mut q = queue(QueueArgs {
            message_ttl: Some(1000),
            ..QueueArgs::default()
        });
        q.push(msg("long", Some(5000)), now, NO_LIMIT);
        q.push(msg("short", Some(10)), now, NO_LIMIT);
        assert_eq!(q.head_expiry(), Some(now + Duration::from_millis(1000)));
        // The short-lived one is behind a live head: it waits.
        assert!(
            q.pop_expired(now + Duration::from_millis(20), false)
                .is_none()
        );
        assert_eq!(
            q.pop_expired(now + Duration::from_millis(1000), false)
                .unwrap()
                .msg
                .body,
            b"long"
        );
        assert_eq!(
            q.pop_expired(now + Duration::from_millis(1000), false)
                .unwrap()
                .msg
                .body,
            b"short"
        );
    }
}
