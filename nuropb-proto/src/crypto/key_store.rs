//! Fernet keys remembered per correlation id, bounded in number and in age.
//!
//! Python keeps every key of an encrypted command, and of any request whose response never comes,
//! for the life of the process. Here each entry expires after [`KeyStoreConfig::ttl`], and when
//! [`KeyStoreConfig::capacity`] entries are held the oldest is dropped to make room.

use crate::crypto::symmetric::SymmetricKey;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Limits of a [`KeyStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyStoreConfig {
    /// How many keys are held at most.
    pub capacity: usize,
    /// How long a key is held: at least as long as a response can take.
    pub ttl: Duration,
}

impl Default for KeyStoreConfig {
    /// 65 536 keys for at most one hour (Python's default request ttl).
    fn default() -> Self {
        KeyStoreConfig {
            capacity: 65_536,
            ttl: Duration::from_secs(3600),
        }
    }
}

/// Keys by correlation id; time is passed in.
///
/// ```
/// use nuropb_proto::crypto::{KeyStore, KeyStoreConfig, SymmetricKey};
/// use std::time::{Duration, Instant};
///
/// let mut store = KeyStore::new(KeyStoreConfig { capacity: 2, ttl: Duration::from_secs(10) });
/// let t0 = Instant::now();
/// store.insert("a", SymmetricKey::generate(), t0);
/// assert!(store.take("a", t0).is_some());
/// assert!(store.take("a", t0).is_none(), "taken once");
/// store.insert("b", SymmetricKey::generate(), t0);
/// assert!(store.take("b", t0 + Duration::from_secs(11)).is_none(), "expired");
/// ```
#[derive(Debug)]
pub struct KeyStore {
    config: KeyStoreConfig,
    keys: HashMap<String, (SymmetricKey, Instant)>,
    /// Insertion order, oldest first; entries whose key was taken or replaced are skipped lazily.
    order: VecDeque<(Instant, String)>,
}

impl KeyStore {
    /// An empty store with these limits.
    pub fn new(config: KeyStoreConfig) -> Self {
        KeyStore {
            config,
            keys: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Remembers `key` for `correlation_id`, replacing any earlier one.
    pub fn insert(&mut self, correlation_id: &str, key: SymmetricKey, now: Instant) {
        self.expire(now);
        if self.config.capacity == 0 {
            return;
        }
        while self.keys.len() >= self.config.capacity && !self.keys.contains_key(correlation_id) {
            self.drop_oldest();
        }
        self.keys.insert(correlation_id.to_owned(), (key, now));
        self.order.push_back((now, correlation_id.to_owned()));
        if self.order.len() > 2 * self.config.capacity {
            let keys = &self.keys;
            self.order
                .retain(|(at, id)| keys.get(id).is_some_and(|(_, t)| t == at));
        }
    }

    /// Takes the key of `correlation_id`, if it is held and has not expired.
    pub fn take(&mut self, correlation_id: &str, now: Instant) -> Option<SymmetricKey> {
        self.expire(now);
        self.keys.remove(correlation_id).map(|(key, _)| key)
    }

    /// Forgets the key of `correlation_id`.
    pub fn forget(&mut self, correlation_id: &str) {
        self.keys.remove(correlation_id);
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Drops every key older than the ttl.
    pub fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.config.ttl {
                break;
            }
            self.drop_oldest();
        }
    }

    fn drop_oldest(&mut self) {
        if let Some((at, id)) = self.order.pop_front()
            && self.keys.get(&id).is_some_and(|(_, t)| *t == at)
        {
            self.keys.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_key_makes_room() {
        let t0 = Instant::now();
        let mut store = KeyStore::new(KeyStoreConfig {
            capacity: 3,
            ttl: Duration::from_secs(60),
        });
        for (i, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
            store.insert(
                id,
                SymmetricKey::generate(),
                t0 + Duration::from_secs(i as u64),
            );
        }
        assert_eq!(store.len(), 3);
        assert!(store.take("a", t0).is_none());
        assert!(store.take("d", t0).is_some());
    }

    #[test]
    fn taken_and_replaced_keys_do_not_grow_the_order_queue_without_bound() {
        let t0 = Instant::now();
        let mut store = KeyStore::new(KeyStoreConfig {
            capacity: 4,
            ttl: Duration::from_secs(60),
        });
        for i in 0..10_000u64 {
            let id = format!("c{}", i % 7);
            store.insert(&id, SymmetricKey::generate(), t0);
            if i % 2 == 0 {
                store.take(&id, t0);
            }
        }
        assert!(store.len() <= 4);
        assert!(store.order.len() <= 8, "{}", store.order.len());
    }
}
