//! Exchanges and their bindings: which destinations a routing key reaches.
//!
//! The default exchange `""` has no stored bindings: the broker routes it to the queue named by
//! the routing key. Exchange-to-exchange bindings and `alternate-exchange` are followed by
//! [`Broker::route`](crate::broker::Broker), which keeps the visited set.

use crate::broker::queue::QueueId;
use crate::broker::routing::{TopicPattern, headers_match};
use amq_protocol::types::{AMQPValue, FieldTable};
use nuropb_proto::amqp::Headers;
use std::collections::HashMap;

/// The exchange types RabbitMQ ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    /// The type named in `exchange.declare`.
    pub(crate) fn parse(kind: &str) -> Option<Self> {
        match kind {
            "direct" => Some(ExchangeKind::Direct),
            "fanout" => Some(ExchangeKind::Fanout),
            "topic" => Some(ExchangeKind::Topic),
            "headers" => Some(ExchangeKind::Headers),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
        }
    }
}

/// Where a binding leads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Destination {
    Queue(QueueId),
    Exchange(String),
}

/// One binding of an exchange (the source) to a destination.
#[derive(Clone, Debug)]
pub(crate) struct Binding {
    pub(crate) destination: Destination,
    pub(crate) routing_key: String,
    pub(crate) arguments: FieldTable,
    topic: Option<TopicPattern>,
}

/// One exchange.
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    pub(crate) name: String,
    pub(crate) kind: ExchangeKind,
    pub(crate) durable: bool,
    pub(crate) auto_delete: bool,
    pub(crate) internal: bool,
    pub(crate) arguments: FieldTable,
    /// Bindings in the order they were made.
    pub(crate) bindings: Vec<Binding>,
    /// For direct exchanges: routing key to destinations.
    direct: HashMap<String, Vec<Destination>>,
}

impl Exchange {
    pub(crate) fn new(
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        Exchange {
            name: name.to_owned(),
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            bindings: Vec::new(),
            direct: HashMap::new(),
        }
    }

    /// The `alternate-exchange` argument.
    pub(crate) fn alternate(&self) -> Option<&[u8]> {
        match self.arguments.inner().get("alternate-exchange") {
            Some(AMQPValue::LongString(s)) => Some(s.as_bytes()),
            _ => None,
        }
    }

    fn position(&self, destination: &Destination, key: &str, args: &FieldTable) -> Option<usize> {
        self.bindings.iter().position(|b| {
            &b.destination == destination && b.routing_key == key && &b.arguments == args
        })
    }

    /// Adds a binding; `false` when an identical one exists (binding is idempotent).
    pub(crate) fn bind(&mut self, destination: Destination, key: &str, args: FieldTable) -> bool {
        if self.position(&destination, key, &args).is_some() {
            return false;
        }
        if self.kind == ExchangeKind::Direct {
            let dests = self.direct.entry(key.to_owned()).or_default();
            if !dests.contains(&destination) {
                dests.push(destination.clone());
            }
        }
        let topic = (self.kind == ExchangeKind::Topic).then(|| TopicPattern::new(key));
        self.bindings.push(Binding {
            destination,
            routing_key: key.to_owned(),
            arguments: args,
            topic,
        });
        true
    }

    /// Removes a binding; `false` when there was none.
    pub(crate) fn unbind(
        &mut self,
        destination: &Destination,
        key: &str,
        args: &FieldTable,
    ) -> bool {
        let Some(at) = self.position(destination, key, args) else {
            return false;
        };
        self.bindings.remove(at);
        self.reindex_key(key);
        true
    }

    /// Removes every binding to `destination`; returns how many there were.
    pub(crate) fn unbind_all(&mut self, destination: &Destination) -> usize {
        let before = self.bindings.len();
        let mut keys = Vec::new();
        self.bindings.retain(|b| {
            let keep = &b.destination != destination;
            if !keep {
                keys.push(b.routing_key.clone());
            }
            keep
        });
        for k in keys {
            self.reindex_key(&k);
        }
        before - self.bindings.len()
    }

    fn reindex_key(&mut self, key: &str) {
        if self.kind != ExchangeKind::Direct {
            return;
        }
        let mut dests: Vec<Destination> = Vec::new();
        for b in self.bindings.iter().filter(|b| b.routing_key == key) {
            if !dests.contains(&b.destination) {
                dests.push(b.destination.clone());
            }
        }
        if dests.is_empty() {
            self.direct.remove(key);
        } else {
            self.direct.insert(key.to_owned(), dests);
        }
    }

    /// Appends the destinations a message with `routing_key` (split into `words` for topics) and
    /// `headers` reaches through this exchange's own bindings.
    pub(crate) fn route(
        &self,
        routing_key: &str,
        words: &[&str],
        headers: Option<&Headers>,
        out: &mut Vec<Destination>,
    ) {
        match self.kind {
            ExchangeKind::Direct => {
                if let Some(dests) = self.direct.get(routing_key) {
                    out.extend(dests.iter().cloned());
                }
            }
            ExchangeKind::Fanout => out.extend(self.bindings.iter().map(|b| b.destination.clone())),
            ExchangeKind::Topic => out.extend(
                self.bindings
                    .iter()
                    .filter(|b| b.topic.as_ref().is_some_and(|t| t.matches(words)))
                    .map(|b| b.destination.clone()),
            ),
            ExchangeKind::Headers => out.extend(
                self.bindings
                    .iter()
                    .filter(|b| headers_match(&b.arguments, headers))
                    .map(|b| b.destination.clone()),
            ),
        }
    }

    /// The destinations of a direct exchange for `routing_key`, without copying.
    pub(crate) fn direct_destinations(&self, routing_key: &str) -> &[Destination] {
        self.direct.get(routing_key).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::routing::split_words;

    fn routed(x: &Exchange, key: &str) -> Vec<Destination> {
        let words: Vec<&str> = split_words(key).collect();
        let mut out = Vec::new();
        x.route(key, &words, None, &mut out);
        out
    }

    #[test]
    fn direct_fanout_topic() {
        let t = FieldTable::default;
        let mut d = Exchange::new("d", ExchangeKind::Direct, false, false, false, t());
        assert!(d.bind(Destination::Queue(1), "k", t()));
        assert!(!d.bind(Destination::Queue(1), "k", t()), "idempotent");
        d.bind(Destination::Queue(2), "k", t());
        d.bind(Destination::Queue(3), "other", t());
        assert_eq!(
            routed(&d, "k"),
            [Destination::Queue(1), Destination::Queue(2)]
        );
        assert!(d.unbind(&Destination::Queue(1), "k", &t()));
        assert_eq!(routed(&d, "k"), [Destination::Queue(2)]);
        assert_eq!(d.unbind_all(&Destination::Queue(2)), 1);
        assert!(routed(&d, "k").is_empty());

        let mut f = Exchange::new("f", ExchangeKind::Fanout, false, false, false, t());
        f.bind(Destination::Queue(1), "ignored", t());
        assert_eq!(routed(&f, "anything"), [Destination::Queue(1)]);

        let mut tp = Exchange::new("t", ExchangeKind::Topic, false, false, false, t());
        tp.bind(Destination::Queue(1), "order.*", t());
        tp.bind(Destination::Queue(2), "#", t());
        assert_eq!(
            routed(&tp, "order.created"),
            [Destination::Queue(1), Destination::Queue(2)]
        );
        assert_eq!(routed(&tp, "order"), [Destination::Queue(2)]);
    }
}
