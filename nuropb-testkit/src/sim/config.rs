//! How a simulation runs: link latency, chunking, bounds.

use std::time::Duration;

/// Settings of a [`Sim`](crate::sim::Sim).
///
/// ```
/// use nuropb_testkit::sim::SimConfig;
/// use std::time::Duration;
///
/// let config = SimConfig {
///     latency: (Duration::from_micros(50), Duration::from_millis(3)),
///     split_chance: 0.2,
///     ..SimConfig::default()
/// };
/// assert!(config.tap);
/// ```
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// One-way latency of every link, drawn uniformly from `[min, max]` for each chunk of
    /// bytes; a link still delivers its bytes in order (it is a TCP stream), so different
    /// latencies interleave traffic *between* connections. `(0, 0)` delivers at once.
    pub latency: (Duration, Duration),
    /// The chance, in `[0, 1]`, that a chunk is split in two at a random byte (both halves
    /// arrive in order): exercises reassembly of partial frames on both sides.
    pub split_chance: f64,
    /// The most steps one `run_*` call may take; more is reported as a livelock.
    pub max_steps: u64,
    /// Decode every frame on every link and check delivery settlement (see
    /// [`Tap`](crate::sim::Tap)). Off for benchmarks.
    pub tap: bool,
    /// Keep every call and event handed to a handler in its endpoint's
    /// [`Record`](crate::sim::Record). Off for benchmarks and long soaks.
    pub record: bool,
    /// Unix time, seconds, at the simulation's start (for Fernet timestamps and `x-death`).
    pub unix_time_origin: u64,
}

impl Default for SimConfig {
    /// No latency, no splitting, a million steps per run call, the tap and recording on, 2023-11-14 as the
    /// wall clock.
    fn default() -> Self {
        SimConfig {
            latency: (Duration::ZERO, Duration::ZERO),
            split_chance: 0.0,
            max_steps: 1_000_000,
            tap: true,
            record: true,
            unix_time_origin: 1_700_000_000,
        }
    }
}
