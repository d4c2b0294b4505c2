//! Seeds: one from the environment to re-run a failure, many for a soak, and the message that
//! tells how to run a failing seed again.
//!
//! `NUROPB_SIM_SEED=<n>` pins every simulation to seed `n`; `NUROPB_SIM_SEEDS=<count>` sets how
//! many seeds [`for_each_seed`] tries.

use std::time::Duration;

/// The environment variable that pins the seed.
pub const SEED_VAR: &str = "NUROPB_SIM_SEED";
/// The environment variable that sets how many seeds a soak tries.
pub const SEEDS_VAR: &str = "NUROPB_SIM_SEEDS";

/// The seed from `NUROPB_SIM_SEED`, else `default`.
pub fn seed_or(default: u64) -> u64 {
    std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// The seeds to try: `NUROPB_SIM_SEED` alone when set, else `NUROPB_SIM_SEEDS` (or
/// `default_count`) seeds from `first`.
pub fn seeds(first: u64, default_count: u64) -> Vec<u64> {
    if let Some(seed) = std::env::var(SEED_VAR)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return vec![seed];
    }
    let count = std::env::var(SEEDS_VAR)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default_count);
    (first..first.saturating_add(count)).collect()
}

/// What a failing simulation prints: the seed and how to run it alone.
pub fn rerun_hint(seed: u64, elapsed: Duration) -> String {
    format!(
        "simulation seed {seed} (failed at {elapsed:?} of simulated time); run it again with \
         {SEED_VAR}={seed} cargo test -p nuropb-testkit <test name>"
    )
}

/// Runs `run` for every seed of [`seeds`]; a panicking seed is reported with how to re-run it,
/// the remaining seeds still run, and the call panics at the end naming every failed seed.
pub fn for_each_seed(first: u64, default_count: u64, mut run: impl FnMut(u64)) {
    let mut failed = Vec::new();
    for seed in seeds(first, default_count) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed)));
        if result.is_err() {
            failed.push(seed);
            if failed.len() >= 5 {
                break; // enough to go on
            }
        }
    }
    assert!(
        failed.is_empty(),
        "seeds failed: {failed:?}; run one alone with {SEED_VAR}=<seed>"
    );
}
