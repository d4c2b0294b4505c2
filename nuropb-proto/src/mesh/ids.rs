//! Correlation ids: 32 lowercase hex digits, like Python's `uuid4().hex`, from a seeded generator.

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// Makes correlation ids from a seed; the same seed gives the same ids.
#[derive(Debug)]
pub(crate) struct IdGenerator {
    rng: SmallRng,
}

impl IdGenerator {
    pub(crate) fn new(seed: u64) -> Self {
        IdGenerator {
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The next id.
    pub(crate) fn next_id(&mut self) -> String {
        format!("{:032x}", self.rng.random::<u128>())
    }
}
