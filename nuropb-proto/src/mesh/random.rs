//! Everything random about an endpoint, drawn from its one seed: correlation ids and the jitter of
//! its reconnect delays. The same seed and the same inputs give the same ids and the same delays.
//!
//! What the seed does not reproduce is the bytes of encrypted messages: Fernet keys, Fernet IVs
//! and OAEP padding come from the operating system (as they must), which changes those bytes and
//! never an outcome.

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::sync::atomic::{AtomicU64, Ordering};

/// Correlation ids: 32 lowercase hex digits, as Python's `uuid4().hex` prints them — a prefix
/// drawn from the seed, then a counter. Unique without a draw each, and shared (it takes `&self`)
/// between an endpoint and the handles that send through it, so that a handle can return a
/// command's id at once.
///
/// ```
/// use nuropb_proto::mesh::CorrelationIds;
/// let ids = CorrelationIds::new(7);
/// let (a, b) = (ids.next_id(), ids.next_id());
/// assert_ne!(a, b);
/// assert_eq!(a.len(), 32);
/// assert_eq!(CorrelationIds::new(7).next_id(), a, "the same seed, the same ids");
/// ```
#[derive(Debug)]
pub struct CorrelationIds {
    prefix: u64,
    next: AtomicU64,
}

impl CorrelationIds {
    /// Ids drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = SmallRng::seed_from_u64(seed);
        CorrelationIds {
            prefix: rng.random(),
            next: AtomicU64::new(rng.random()),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{n:016x}", self.prefix)
    }
}

/// Jitter factors for reconnect delays, in `[0, 1]`.
#[derive(Debug)]
pub(crate) struct Jitter {
    rng: SmallRng,
}

impl Jitter {
    /// Drawn from `seed` (a stream apart from the ids').
    pub(crate) fn new(seed: u64) -> Self {
        Jitter {
            rng: SmallRng::seed_from_u64(seed ^ 0x6a69_7474_6572),
        }
    }

    /// The next factor.
    pub(crate) fn next(&mut self) -> f64 {
        self.rng.random::<f64>()
    }
}
