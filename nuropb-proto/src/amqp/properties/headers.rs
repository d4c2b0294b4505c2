//! A header field table that keeps its order.

use amq_protocol::types::{AMQPValue, ShortString};

use super::PropertiesError;

/// A header field table that keeps its entries in insertion order.
///
/// ```
/// use nuropb_proto::amqp::{AMQPValue, Headers};
///
/// let mut headers = Headers::default();
/// headers.insert("nuropb_type", AMQPValue::LongString("request".into()));
/// headers.insert("trace_id", AMQPValue::Void);
/// assert_eq!(headers.keys().collect::<Vec<_>>(), ["nuropb_type", "trace_id"]);
/// ```
#[derive(Clone, Default)]
pub struct Headers {
    /// The keys, one after another: one allocation for all of them.
    names: String,
    /// Per entry, in order: where its key ends in `names`, and its value.
    entries: Vec<(usize, AMQPValue)>,
}

impl Headers {
    /// An empty table with room for `entries` entries whose keys take `key_bytes` bytes in all.
    pub fn with_capacity(entries: usize, key_bytes: usize) -> Self {
        Headers {
            names: String::with_capacity(key_bytes),
            entries: Vec::with_capacity(entries),
        }
    }

    /// The value under `key`, if any (the first, should the table repeat a key).
    pub fn get(&self, key: &str) -> Option<&AMQPValue> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Sets `key` to `value`: in place when the key exists, appended otherwise.
    ///
    /// # Panics
    /// When `key` is longer than 255 bytes; use [`Headers::try_insert`] for keys from elsewhere.
    pub fn insert(&mut self, key: &str, value: AMQPValue) {
        self.try_insert(key, value)
            .expect("header key longer than 255 bytes");
    }

    /// Sets `key` to `value`, or fails when the key is longer than 255 bytes.
    pub fn try_insert(&mut self, key: &str, value: AMQPValue) -> Result<(), PropertiesError> {
        if let Some(at) = self.position(key) {
            self.entries[at].1 = value;
        } else {
            if key.len() > 255 {
                return Err(PropertiesError::KeyTooLong);
            }
            self.push(key, value);
        }
        Ok(())
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<AMQPValue> {
        let at = self.position(key)?;
        let start = self.start(at);
        let (end, value) = self.entries.remove(at);
        self.names.replace_range(start..end, "");
        for entry in &mut self.entries[at..] {
            entry.0 -= end - start;
        }
        Some(value)
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    /// The entries, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &AMQPValue)> {
        self.entries.iter().scan(0, |start, (end, value)| {
            let key = self.names.get(*start..*end).unwrap_or_default();
            *start = *end;
            Some((key, value))
        })
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends an entry without looking for the key (a table read from the wire may repeat one).
    pub(super) fn push(&mut self, key: &str, value: AMQPValue) {
        self.names.push_str(key);
        self.entries.push((self.names.len(), value));
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.keys().position(|k| k == key)
    }

    fn start(&self, at: usize) -> usize {
        match at {
            0 => 0,
            _ => self.entries[at - 1].0,
        }
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromIterator<(ShortString, AMQPValue)> for Headers {
    fn from_iter<T: IntoIterator<Item = (ShortString, AMQPValue)>>(iter: T) -> Self {
        let mut headers = Headers::default();
        for (k, v) in iter {
            if let Some(at) = headers.position(k.as_str()) {
                headers.entries[at].1 = v;
            } else {
                headers.push(k.as_str(), v);
            }
        }
        headers
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn nuropb_headers() -> Headers {
        let mut h = Headers::default();
        h.insert("nuropb_protocol", AMQPValue::LongString("0.1.1".into()));
        h.insert("nuropb_version", AMQPValue::LongString("0.1.8".into()));
        h.insert("nuropb_type", AMQPValue::LongString("event".into()));
        h.insert("trace_id", AMQPValue::Void);
        h.insert("encrypted", AMQPValue::LongString("".into()));
        h
    }

    #[test]
    fn headers_insert_replace_remove_keep_order() {
        let mut h = nuropb_headers();
        h.insert("nuropb_type", AMQPValue::LongString("request".into()));
        assert_eq!(h.len(), 5);
        assert_eq!(
            h.remove("nuropb_version"),
            Some(AMQPValue::LongString("0.1.8".into()))
        );
        assert_eq!(h.remove("nuropb_version"), None);
        assert_eq!(
            h.keys().collect::<Vec<_>>(),
            ["nuropb_protocol", "nuropb_type", "trace_id", "encrypted"]
        );
        assert_eq!(h.get("trace_id"), Some(&AMQPValue::Void));
        assert_eq!(
            h.get("nuropb_type"),
            Some(&AMQPValue::LongString("request".into()))
        );
        h.insert("x", AMQPValue::Boolean(true));
        assert_eq!(h.keys().last(), Some("x"));
        assert_eq!(
            h.try_insert(&"k".repeat(256), AMQPValue::Void),
            Err(PropertiesError::KeyTooLong)
        );
        // Equality is by entries, not by how they were built.
        let rebuilt: Headers = h
            .iter()
            .map(|(k, v)| (ShortString::from(k), v.clone()))
            .collect();
        assert_eq!(rebuilt, h);
        assert_ne!(rebuilt, nuropb_headers());
        assert_eq!(
            format!("{:?}", Headers::from_iter([("a".into(), AMQPValue::Void)])),
            r#"{"a": Void}"#
        );
    }
}
