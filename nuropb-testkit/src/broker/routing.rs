//! Matching routing keys: topic patterns (`*` one word, `#` zero or more words) and the headers
//! exchange's `x-match`.
//!
//! Words are split on `.` the way RabbitMQ splits them: the empty key has no words, `"a."` has
//! two (`a` and the empty word). Matching is a dynamic programme over words, so patterns with many
//! `#` cost O(pattern × key), never exponential time.

use amq_protocol::types::{AMQPValue, FieldTable};
use nuropb_proto::amqp::Headers;

/// A topic binding key, split into words once at bind time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TopicPattern {
    words: Vec<Word>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Word {
    /// `*`: exactly one word.
    Star,
    /// `#`: zero or more words.
    Hash,
    /// A literal word.
    Lit(String),
}

/// RabbitMQ's `split_topic_key`: no words for the empty key, otherwise split on every `.`.
pub(crate) fn split_words(key: &str) -> impl Iterator<Item = &str> {
    let mut it = Some(key.split('.'));
    if key.is_empty() {
        it = None;
    }
    it.into_iter().flatten()
}

impl TopicPattern {
    pub(crate) fn new(pattern: &str) -> Self {
        TopicPattern {
            words: split_words(pattern)
                .map(|w| match w {
                    "*" => Word::Star,
                    "#" => Word::Hash,
                    w => Word::Lit(w.to_owned()),
                })
                .collect(),
        }
    }

    /// Whether `key` (already split into words) matches.
    pub(crate) fn matches(&self, key: &[&str]) -> bool {
        // reach[j]: the first i pattern words can match the first j key words.
        let mut reach = vec![false; key.len() + 1];
        reach[0] = true;
        for word in &self.words {
            match word {
                Word::Hash => {
                    // Zero or more words: once a prefix is reachable, every longer one is too.
                    for j in 1..=key.len() {
                        reach[j] = reach[j] || reach[j - 1];
                    }
                }
                Word::Star | Word::Lit(_) => {
                    for j in (1..=key.len()).rev() {
                        let ok = match word {
                            Word::Lit(w) => w == key[j - 1],
                            _ => true,
                        };
                        reach[j] = reach[j - 1] && ok;
                    }
                    reach[0] = false;
                }
            }
        }
        reach[key.len()]
    }
}

/// Whether a message with `headers` matches a headers-exchange binding with `args`
/// (`x-match` `all` — the default — or `any`; `all-with-x`/`any-with-x` also compare `x-` keys).
pub(crate) fn headers_match(args: &FieldTable, headers: Option<&Headers>) -> bool {
    let mode = match args.inner().get("x-match") {
        Some(AMQPValue::LongString(s)) => s.as_bytes().to_vec(),
        _ => b"all".to_vec(),
    };
    let (any, with_x) = match mode.as_slice() {
        b"any" => (true, false),
        b"any-with-x" => (true, true),
        b"all-with-x" => (false, true),
        _ => (false, false),
    };
    let mut wanted = args
        .inner()
        .iter()
        .filter(|(k, _)| with_x || !k.as_str().starts_with("x-"))
        .filter(|(k, _)| k.as_str() != "x-match")
        .peekable();
    if wanted.peek().is_none() {
        // RabbitMQ: an `all` binding without keys matches everything, an `any` one nothing.
        return !any;
    }
    let mut hit = |(k, v): (&nuropb_proto::amqp::ShortString, &AMQPValue)| {
        let Some(have) = headers.and_then(|h| h.get(k.as_str())) else {
            return false;
        };
        matches!(v, AMQPValue::Void) || have == v
    };
    if any {
        wanted.any(&mut hit)
    } else {
        wanted.all(&mut hit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, key: &str) -> bool {
        let words: Vec<&str> = split_words(key).collect();
        TopicPattern::new(pattern).matches(&words)
    }

    #[test]
    fn topic_wildcards_as_rabbitmq() {
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "a.c"));
        assert!(m("a.*", "a.b"));
        assert!(!m("a.*", "a"));
        assert!(!m("a.*", "a.b.c"));
        assert!(m("a.#", "a"));
        assert!(m("a.#", "a.b.c"));
        assert!(m("#", ""));
        assert!(m("#", "x.y"));
        assert!(!m("*", ""));
        assert!(m("*", "x"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("#.b.#", "b"));
        assert!(m("#.b.#", "a.b.c"));
        assert!(!m("#.b.#", "a.c"));
        assert!(m("*.#.*", "a.b"));
        assert!(!m("*.#.*", "a"));
        assert!(m("a.*.#", "a.b"));
        assert!(m("order.*", "order."), "the empty word is a word");
        assert!(m(
            "#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.x",
            &"a.".repeat(60).add("x")
        ));
    }

    trait Add {
        fn add(self, s: &str) -> String;
    }
    impl Add for String {
        fn add(mut self, s: &str) -> String {
            self.push_str(s);
            self
        }
    }

    #[test]
    fn headers_all_and_any() {
        let mut args = FieldTable::default();
        args.insert("a".into(), AMQPValue::LongString("1".into()));
        args.insert("b".into(), AMQPValue::LongString("2".into()));
        let mut h = Headers::default();
        h.insert("a", AMQPValue::LongString("1".into()));
        assert!(!headers_match(&args, Some(&h)));
        args.insert("x-match".into(), AMQPValue::LongString("any".into()));
        assert!(headers_match(&args, Some(&h)));
        assert!(!headers_match(&args, None));
    }
}
