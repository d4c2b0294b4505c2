//! AMQP topic patterns: words separated by `.`, where `*` stands for exactly one word and `#`
//! for zero or more, as RabbitMQ's topic exchange matches them.

/// Refuses what cannot be a topic (for publishing) or a pattern (for subscribing): empty, over
/// 255 bytes (AMQP's routing-key limit), or with `*`/`#` inside a word.
pub(crate) fn check(text: &str, pattern: bool) -> Result<(), String> {
    let what = if pattern { "topic pattern" } else { "topic" };
    if text.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if text.len() > 255 {
        return Err(format!(
            "the {what} is {} bytes long; AMQP allows at most 255",
            text.len()
        ));
    }
    for word in text.split('.') {
        let wild = word.contains('*') || word.contains('#');
        if wild && (!pattern || word.len() > 1) {
            return Err(format!(
                "the {what} {text:?} has `*` or `#` inside a word; they stand for whole words{}",
                if pattern { "" } else { " and only in patterns" }
            ));
        }
    }
    Ok(())
}

/// Whether `topic` matches `pattern` (`orders.#` matches `orders.eu.placed`).
pub(crate) fn matches(pattern: &str, topic: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('.').collect();
    let topic: Vec<&str> = topic.split('.').collect();
    words_match(&pattern, &topic)
}

fn words_match(pattern: &[&str], topic: &[&str]) -> bool {
    match pattern.split_first() {
        None => topic.is_empty(),
        Some((&"#", rest)) => (0..=topic.len()).any(|skip| words_match(rest, &topic[skip..])),
        Some((word, rest)) => match topic.split_first() {
            Some((first, others)) => (*word == "*" || word == first) && words_match(rest, others),
            None => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_rabbitmq_does() {
        let cases = [
            ("orders.#", "orders", true),
            ("orders.#", "orders.eu.placed", true),
            ("orders.*", "orders.eu", true),
            ("orders.*", "orders.eu.placed", false),
            ("orders.*", "orders", false),
            ("#", "anything.at.all", true),
            ("*.placed", "orders.placed", true),
            ("#.placed", "placed", true),
            ("a.#.z", "a.z", true),
            ("a.#.z", "a.b.c.z", true),
            ("a.#.z", "a.b.c", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ];
        for (pattern, topic, expected) in cases {
            assert_eq!(matches(pattern, topic), expected, "{pattern} ~ {topic}");
        }
    }

    #[test]
    fn wildcards_stand_for_whole_words_only() {
        assert!(check("orders.#", true).is_ok());
        assert!(check("orders.ab#", true).is_err());
        assert!(check("orders.*", false).is_err());
        assert!(check("", true).is_err());
        assert!(check(&"a".repeat(256), false).is_err());
    }
}
