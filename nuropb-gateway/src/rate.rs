//! The per-client token bucket: a sustained rate and a burst, for each user (or address, when
//! anonymous), in a map of bounded size.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Token buckets by client key.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    max_clients: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `rate` per second sustained, `burst` at once, for at most `max_clients` keys.
    pub(crate) fn new(rate: f64, burst: f64, max_clients: usize) -> RateLimiter {
        RateLimiter {
            rate: rate.max(f64::MIN_POSITIVE),
            burst: burst.max(1.0),
            max_clients: max_clients.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key` at `now`: `Ok` or the whole seconds to wait for one.
    pub(crate) fn take(&self, key: &str, now: Instant) -> Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if !buckets.contains_key(key) && buckets.len() >= self.max_clients {
            // Forget the clients whose bucket has refilled: they are as if new.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
            if buckets.len() >= self.max_clients {
                return Err(1);
            }
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let limiter = RateLimiter::new(2.0, 3.0, 10);
        let t = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take("u", t), Ok(()));
        }
        assert_eq!(limiter.take("u", t), Err(1));
        assert_eq!(limiter.take("other", t), Ok(()));
        assert_eq!(limiter.take("u", t + Duration::from_millis(500)), Ok(()));
        assert!(limiter.take("u", t + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn the_map_stays_bounded() {
        let limiter = RateLimiter::new(1.0, 1.0, 2);
        let t = Instant::now();
        assert!(limiter.take("a", t).is_ok());
        assert!(limiter.take("b", t).is_ok());
        // Both buckets are empty: a third client cannot be tracked yet.
        assert!(limiter.take("c", t).is_err());
        // Once they have refilled they are forgotten, and room is made.
        assert!(limiter.take("c", t + Duration::from_secs(2)).is_ok());
        assert!(limiter.buckets.lock().unwrap().len() <= 2);
    }
}
