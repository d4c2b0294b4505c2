//! What `/metrics` shows, in Prometheus' text format: requests by service, method and status, a
//! latency histogram, open sockets and event streams, and refusals by reason.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Why the gateway refused or dropped a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// An origin not on the allow-list.
    Origin,
    /// No token, or one that does not verify.
    Authentication,
    /// Over its rate.
    RateLimit,
    /// Too many requests in flight on one socket.
    InFlight,
    /// A socket whose client does not read.
    SlowReader,
    /// A frame or body over the size limit.
    Oversize,
    /// A frame that is not JSON, or not a frame the gateway knows.
    BadFrame,
    /// A socket whose token expired.
    Expired,
    /// More sockets and event streams than the gateway takes.
    Capacity,
}

const REASONS: [(Reason, &str); 9] = [
    (Reason::Origin, "origin"),
    (Reason::Authentication, "authentication"),
    (Reason::RateLimit, "rate_limit"),
    (Reason::InFlight, "in_flight"),
    (Reason::SlowReader, "slow_reader"),
    (Reason::Oversize, "oversize"),
    (Reason::BadFrame, "bad_frame"),
    (Reason::Expired, "expired"),
    (Reason::Capacity, "capacity"),
];

/// Upper bounds of the latency histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The most (service, method, status) series kept; calls past it count under `(other)`.
const MAX_SERIES: usize = 10_000;

/// Counts by service, then method, then status; `len` series in all.
#[derive(Debug, Default)]
struct Series {
    by_service: HashMap<String, HashMap<String, HashMap<u16, u64>>>,
    len: usize,
}

impl Series {
    fn add(&mut self, service: &str, method: &str, status: u16) {
        if let Some(n) = self
            .by_service
            .get_mut(service)
            .and_then(|m| m.get_mut(method))
            .and_then(|s| s.get_mut(&status))
        {
            *n += 1;
            return;
        }
        let (service, method) = if self.len < MAX_SERIES {
            (service, method)
        } else {
            ("(other)", "(other)")
        };
        let n = self
            .by_service
            .entry(service.to_owned())
            .or_default()
            .entry(method.to_owned())
            .or_default()
            .entry(status)
            .or_insert_with(|| 0);
        if *n == 0 {
            self.len += 1;
        }
        *n += 1;
    }
}

/// The gateway's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    requests: Mutex<Series>,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    sockets: AtomicI64,
    streams: AtomicI64,
    refusals: [AtomicU64; REASONS.len()],
}

impl Metrics {
    /// A call of `service.method` answered with `status` after `elapsed`.
    pub(crate) fn request(&self, service: &str, method: &str, status: u16, elapsed: Duration) {
        if let Ok(mut requests) = self.requests.lock() {
            requests.add(service, method, status);
        }
        // Each bucket counts its own range; render sums them up.
        let seconds = elapsed.as_secs_f64();
        if let Some(bucket) = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .and_then(|i| self.buckets.get(i))
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// A refusal for `reason`.
    pub(crate) fn refused(&self, reason: Reason) {
        if let Some(i) = REASONS.iter().position(|(r, _)| *r == reason) {
            self.refusals[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A socket opened (`+1`) or closed (`-1`).
    pub(crate) fn sockets(&self, delta: i64) {
        self.sockets.fetch_add(delta, Ordering::Relaxed);
    }

    /// An event stream opened (`+1`) or closed (`-1`).
    pub(crate) fn streams(&self, delta: i64) {
        self.streams.fetch_add(delta, Ordering::Relaxed);
    }

    /// Open sockets now.
    pub(crate) fn open_sockets(&self) -> i64 {
        self.sockets.load(Ordering::Relaxed)
    }

    /// Open sockets and event streams now.
    pub(crate) fn open_clients(&self) -> usize {
        let n = self.sockets.load(Ordering::Relaxed) + self.streams.load(Ordering::Relaxed);
        usize::try_from(n).unwrap_or(0)
    }

    /// Everything, in Prometheus' text exposition format.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP nuropb_gateway_requests_total Requests through the gateway, by service, method and HTTP status.\n");
        out.push_str("# TYPE nuropb_gateway_requests_total counter\n");
        if let Ok(requests) = self.requests.lock() {
            let mut series: Vec<(&String, &String, &u16, &u64)> = requests
                .by_service
                .iter()
                .flat_map(|(s, methods)| {
                    methods.iter().flat_map(move |(m, statuses)| {
                        statuses.iter().map(move |(status, n)| (s, m, status, n))
                    })
                })
                .collect();
            series.sort();
            for (service, method, status, n) in series {
                let _ = writeln!(
                    out,
                    "nuropb_gateway_requests_total{{service=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                    label(service),
                    label(method)
                );
            }
        }
        out.push_str(
            "# HELP nuropb_gateway_request_seconds Time from a request's arrival to its answer.\n",
        );
        out.push_str("# TYPE nuropb_gateway_request_seconds histogram\n");
        let mut cumulative = 0;
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "nuropb_gateway_request_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "nuropb_gateway_request_seconds_bucket{{le=\"+Inf\"}} {count}\nnuropb_gateway_request_seconds_sum {}\nnuropb_gateway_request_seconds_count {count}",
            self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP nuropb_gateway_open_sockets WebSockets open now.\n# TYPE nuropb_gateway_open_sockets gauge\nnuropb_gateway_open_sockets {}",
            self.sockets.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP nuropb_gateway_open_event_streams Server-Sent Event streams open now.\n# TYPE nuropb_gateway_open_event_streams gauge\nnuropb_gateway_open_event_streams {}",
            self.streams.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP nuropb_gateway_refusals_total Clients refused or dropped, by reason.\n",
        );
        out.push_str("# TYPE nuropb_gateway_refusals_total counter\n");
        for ((_, name), n) in REASONS.iter().zip(&self.refusals) {
            let _ = writeln!(
                out,
                "nuropb_gateway_refusals_total{{reason=\"{name}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let m = Metrics::default();
        m.request("svc", "m\"x", 200, Duration::from_millis(2));
        m.refused(Reason::RateLimit);
        m.sockets(1);
        let text = m.render();
        assert!(text.contains(
            r#"nuropb_gateway_requests_total{service="svc",method="m\"x",status="200"} 1"#
        ));
        assert!(text.contains(r#"nuropb_gateway_request_seconds_bucket{le="0.0025"} 1"#));
        assert!(text.contains(r#"nuropb_gateway_request_seconds_bucket{le="0.001"} 0"#));
        assert!(text.contains("nuropb_gateway_open_sockets 1"));
        assert!(text.contains(r#"nuropb_gateway_refusals_total{reason="rate_limit"} 1"#));
    }
}
