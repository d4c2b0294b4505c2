//! The gateway's bounds: sizes, queues, rates and deadlines.

use std::time::Duration;

/// Bounds on what one client may ask of the gateway; every one has a default that a public
/// gateway can start with.
///
/// ```
/// use nuropb_gateway::Limits;
/// let limits = Limits { rate_per_second: 50.0, ..Limits::default() };
/// assert_eq!(limits.max_in_flight, 128);
/// ```
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest WebSocket message or HTTP body the gateway reads, in bytes (1 MiB). A message
    /// up to four times larger is read and answered with an error; beyond that the socket is
    /// closed with code 1009, since the stream cannot be read past it.
    pub max_frame_bytes: usize,
    /// Requests (and describes) one socket may have in flight at once (128); more are refused
    /// with an error until one completes.
    pub max_in_flight: usize,
    /// Frames one socket may have waiting to be written (256): a client that does not read is
    /// closed (code 1008) rather than let its queue grow.
    pub outbound_queue: usize,
    /// WebSockets and event streams open at once (50,000); more are refused with 503.
    pub max_clients: usize,
    /// Topic patterns one socket (or event stream) may subscribe to (32).
    pub max_subscriptions: usize,
    /// Sustained rate of requests, commands, events, describes and subscriptions per user (per
    /// address when anonymous), per second (100).
    pub rate_per_second: f64,
    /// How many may come at once above the sustained rate (200).
    pub rate_burst: f64,
    /// How many users and addresses the rate limiter keeps track of (100,000); past that, those
    /// with a full bucket are forgotten, and if none is, new ones are refused.
    pub max_tracked_clients: usize,
    /// How long a request waits for its response unless the client asks for less (60 s).
    pub request_timeout: Duration,
    /// How long a socket opened without a token has to send its `authenticate` frame (10 s),
    /// when anonymous clients are not allowed.
    pub authenticate_within: Duration,
    /// How long a write to a socket may take before the socket is dropped (10 s).
    pub write_timeout: Duration,
    /// How long a service's description is kept before it is asked for again (30 s).
    pub describe_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 1 << 20,
            max_in_flight: 128,
            outbound_queue: 256,
            max_clients: 50_000,
            max_subscriptions: 32,
            rate_per_second: 100.0,
            rate_burst: 200.0,
            max_tracked_clients: 100_000,
            request_timeout: Duration::from_secs(60),
            authenticate_within: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            describe_ttl: Duration::from_secs(30),
        }
    }
}
