//! What the broker is told before it starts: credentials, tuning, limits, seed and clock origin.

use std::time::Duration;

/// The configuration of a [`Broker`](crate::broker::Broker).
///
/// The defaults are RabbitMQ's where RabbitMQ has one (guest/guest, heartbeat 60 s, frame_max
/// 131072, channel_max 2047, handshake timeout 10 s), and bounds that keep one broker's memory
/// finite where RabbitMQ relies on its memory alarm instead. Every bound is documented on its
/// field with what happens when it is reached.
///
/// ```
/// use nuropb_testkit::broker::BrokerConfig;
///
/// let config = BrokerConfig {
///     user: "svc".into(),
///     password: "secret".into(),
///     max_queue_messages: 1_000,
///     ..BrokerConfig::default()
/// };
/// assert_eq!(config.heartbeat, 60);
/// ```
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// The one user that may log in (SASL `PLAIN` or `AMQPLAIN`).
    pub user: String,
    /// Its password.
    pub password: String,
    /// The heartbeat interval proposed in `connection.tune`, seconds; the client's `tune-ok`
    /// value is then used (0 disables heartbeats for that connection).
    pub heartbeat: u16,
    /// The largest frame proposed in `connection.tune`; a client may ask for less, not more.
    pub frame_max: u32,
    /// The most channels a connection may have open at once, proposed in `connection.tune`.
    pub channel_max: u16,
    /// How long a client has from connecting to `connection.open`; then the socket is closed.
    pub handshake_timeout: Duration,
    /// How long the broker waits for `connection.close-ok` after sending `connection.close`.
    pub close_timeout: Duration,
    /// RabbitMQ's `consumer_timeout` (30 minutes by default since 3.8.15): a delivery not
    /// acknowledged for this long closes its channel with `406 PRECONDITION_FAILED - delivery
    /// acknowledgement on channel N timed out…`, which requeues it. `None` disables the check.
    pub consumer_timeout: Option<Duration>,
    /// Whether `connection.open` creates a virtual host that does not exist yet (the default). When
    /// off, only `/` and hosts added with [`Broker::add_vhost`](crate::broker::Broker::add_vhost)
    /// exist and others get `530 NOT_ALLOWED - vhost X not found`, as on RabbitMQ.
    pub auto_create_vhosts: bool,
    /// Declare NuroPb's mesh exchanges (`nuropb-rpc-exchange` direct, `nuropb-events-exchange`
    /// topic, `nuropb-dl-exchange` fanout, all durable) in every virtual host when it is created.
    pub declare_mesh_exchanges: bool,
    /// The most connections at once; a connection accepted beyond it is closed at once.
    pub max_connections: usize,
    /// The most virtual hosts; opening another one is refused with 530.
    pub max_vhosts: usize,
    /// The most queues per virtual host; declaring another is refused with 406.
    pub max_queues: usize,
    /// The most exchanges per virtual host (the predeclared ones included); beyond: 406.
    pub max_exchanges: usize,
    /// The most bindings per exchange; beyond: 406.
    pub max_bindings: usize,
    /// The most consumers per channel; beyond: 530, as RabbitMQ's `consumer_max_per_channel`.
    pub max_consumers_per_channel: usize,
    /// The most ready messages per queue. At the bound the queue behaves as if it had this
    /// `x-max-length`: with the default overflow (`drop-head`) the oldest message is dropped, and
    /// dead-lettered with reason `maxlen` when the queue has a dead-letter exchange; with
    /// `x-overflow: reject-publish` the new message is refused (`basic.nack` under confirms).
    pub max_queue_messages: usize,
    /// The most body bytes of ready messages per queue, with the same overflow behaviour as
    /// [`max_queue_messages`](Self::max_queue_messages) (like an `x-max-length-bytes`).
    pub max_queue_bytes: usize,
    /// The largest message body accepted; a larger one closes the channel with `406
    /// PRECONDITION_FAILED - message size N is larger than configured max size M`.
    pub max_message_size: usize,
    /// The most unacknowledged deliveries per channel; at the bound no more messages are delivered
    /// to that channel's consumers until some are acknowledged (an implicit prefetch).
    pub max_unacked_per_channel: usize,
    /// Output bytes a connection may have pending before deliveries to it pause; they resume once
    /// [`Broker::poll_transmit`](crate::broker::Broker::poll_transmit) has taken the bytes.
    pub max_output_buffer: usize,
    /// Output bytes a connection may have pending at all (method replies included). A client that
    /// keeps sending without reading past this is disconnected.
    pub max_pending_output: usize,
    /// Seed of the generator behind server-chosen names (`amq.gen-…`, `amq.ctag-…`), so that a
    /// run is reproducible.
    pub seed: u64,
    /// Unix time, seconds, of the first instant the broker is given; wall-clock times on the wire
    /// (`x-death` `time`) are this plus the time passed since. The broker never reads a clock.
    pub unix_time_origin: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            user: "guest".into(),
            password: "guest".into(),
            heartbeat: 60,
            frame_max: 131_072,
            channel_max: 2047,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(30),
            consumer_timeout: Some(Duration::from_secs(30 * 60)),
            auto_create_vhosts: true,
            declare_mesh_exchanges: false,
            max_connections: 10_000,
            max_vhosts: 1_000,
            max_queues: 10_000,
            max_exchanges: 10_000,
            max_bindings: 10_000,
            max_consumers_per_channel: 10_000,
            max_queue_messages: 1_000_000,
            max_queue_bytes: 256 * 1024 * 1024,
            max_message_size: 16 * 1024 * 1024,
            max_unacked_per_channel: 65_536,
            max_output_buffer: 1024 * 1024,
            max_pending_output: 64 * 1024 * 1024,
            seed: 0x6e75_726f_7062,
            unix_time_origin: 0,
        }
    }
}
