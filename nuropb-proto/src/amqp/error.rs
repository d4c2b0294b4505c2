//! Errors: [`Error`] for a command the connection refuses, [`ConnectionError`] for why a
//! connection ended, and the AMQP reply codes it uses.

use amq_protocol::types::ChannelId;

/// AMQP 0-9-1 reply codes (the spec's `constant` list), as RabbitMQ uses them.
pub mod reply_code {
    /// 200: normal close.
    pub const REPLY_SUCCESS: u16 = 200;
    /// 312: `basic.return` of a mandatory message that had no route.
    pub const NO_ROUTE: u16 = 312;
    /// 320: the broker closed the connection (operator action, shutdown).
    pub const CONNECTION_FORCED: u16 = 320;
    /// 402: the virtual host path is invalid.
    pub const INVALID_PATH: u16 = 402;
    /// 403: access refused (authentication, reserved names, exclusive consumer in use, …).
    pub const ACCESS_REFUSED: u16 = 403;
    /// 404: an entity (queue, exchange) does not exist.
    pub const NOT_FOUND: u16 = 404;
    /// 405: an exclusive queue belongs to another connection.
    pub const RESOURCE_LOCKED: u16 = 405;
    /// 406: a precondition failed (e.g. redeclare with other arguments, unknown delivery tag).
    pub const PRECONDITION_FAILED: u16 = 406;
    /// 501: a frame could not be read.
    pub const FRAME_ERROR: u16 = 501;
    /// 502: a field held an illegal value.
    pub const SYNTAX_ERROR: u16 = 502;
    /// 503: a method that is not valid here.
    pub const COMMAND_INVALID: u16 = 503;
    /// 504: a frame on a channel that is not open (or a second open).
    pub const CHANNEL_ERROR: u16 = 504;
    /// 505: a frame out of sequence (content where none was expected, or missing).
    pub const UNEXPECTED_FRAME: u16 = 505;
    /// 506: a resource limit was exceeded.
    pub const RESOURCE_ERROR: u16 = 506;
    /// 530: not allowed (e.g. the virtual host does not exist, a reused consumer tag).
    pub const NOT_ALLOWED: u16 = 530;
    /// 540: something the server does not implement.
    pub const NOT_IMPLEMENTED: u16 = 540;
    /// 541: the server hit an internal error.
    pub const INTERNAL_ERROR: u16 = 541;

    /// The name RabbitMQ puts in front of a reply text for `code`.
    ///
    /// ```
    /// use nuropb_proto::amqp::reply_code::{name, NOT_FOUND};
    /// assert_eq!(name(NOT_FOUND), "NOT_FOUND");
    /// assert_eq!(name(999), "UNKNOWN");
    /// ```
    pub fn name(code: u16) -> &'static str {
        match code {
            REPLY_SUCCESS => "REPLY_SUCCESS",
            NO_ROUTE => "NO_ROUTE",
            CONNECTION_FORCED => "CONNECTION_FORCED",
            INVALID_PATH => "INVALID_PATH",
            ACCESS_REFUSED => "ACCESS_REFUSED",
            NOT_FOUND => "NOT_FOUND",
            RESOURCE_LOCKED => "RESOURCE_LOCKED",
            PRECONDITION_FAILED => "PRECONDITION_FAILED",
            FRAME_ERROR => "FRAME_ERROR",
            SYNTAX_ERROR => "SYNTAX_ERROR",
            COMMAND_INVALID => "COMMAND_INVALID",
            CHANNEL_ERROR => "CHANNEL_ERROR",
            UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
            RESOURCE_ERROR => "RESOURCE_ERROR",
            NOT_ALLOWED => "NOT_ALLOWED",
            NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
            INTERNAL_ERROR => "INTERNAL_ERROR",
            _ => "UNKNOWN",
        }
    }

    /// Whether an error with `code` closes the connection (a *hard* error) rather than the
    /// channel.
    ///
    /// ```
    /// use nuropb_proto::amqp::reply_code::{is_hard, FRAME_ERROR, NOT_FOUND};
    /// assert!(is_hard(FRAME_ERROR));
    /// assert!(!is_hard(NOT_FOUND));
    /// ```
    pub fn is_hard(code: u16) -> bool {
        !matches!(
            code,
            NO_ROUTE | ACCESS_REFUSED | NOT_FOUND | RESOURCE_LOCKED | PRECONDITION_FAILED
        )
    }
}

/// Why the connection refused a command. Nothing was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The handshake has not finished; wait for [`Event::Connected`](crate::amqp::Event::Connected).
    #[error("the connection is not open yet")]
    NotConnected,
    /// The connection is closing or closed.
    #[error("the connection is closing or closed")]
    Closed,
    /// The channel is not open (never opened, or already closed).
    #[error("channel {0} is not open")]
    ChannelNotOpen(ChannelId),
    /// The channel is closing; only its `channel.close-ok` is still awaited.
    #[error("channel {0} is closing")]
    ChannelClosing(ChannelId),
    /// Every channel number up to the negotiated `channel_max` is in use.
    #[error("all {0} channels are in use")]
    NoFreeChannel(u16),
    /// A string that goes on the wire as an AMQP short string is longer than 255 bytes.
    #[error("{field} is {len} bytes long; an AMQP short string holds at most 255")]
    ShortStringTooLong {
        /// Which argument.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// The configured `frame_max` is below the AMQP minimum of 4096 (and not 0).
    #[error("frame_max {0} is below the minimum of 4096")]
    FrameMaxTooSmall(u32),
    /// A `no_wait` request would leave the broker to choose a name nobody learns.
    #[error("{0} must be given when no_wait is set")]
    NoWaitNeedsName(&'static str),
}

/// Why a connection ended, other than a close we asked for with
/// [`Connection::close`](crate::amqp::Connection::close).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The broker refused the credentials: `connection.close` 403 after `start-ok`, or the
    /// socket closed right after `start-ok` (brokers without `authentication_failure_close`).
    #[error("authentication failed: {reply_text}")]
    AuthenticationFailed {
        /// The broker's text, or a note that the socket closed.
        reply_text: String,
    },
    /// The broker refused `connection.open` for the virtual host (530 NOT_ALLOWED, 402).
    #[error("virtual host {vhost:?} refused: {reply_text}")]
    VhostNotAllowed {
        /// The virtual host we asked for.
        vhost: String,
        /// The broker's text.
        reply_text: String,
    },
    /// The broker answered with a protocol header: it does not speak AMQP 0-9-1.
    #[error("the broker speaks protocol {0:?}, not AMQP 0-9-1")]
    UnsupportedProtocol([u8; 4]),
    /// The broker does not offer SASL PLAIN.
    #[error("the broker offers no PLAIN authentication (mechanisms: {0})")]
    NoPlainMechanism(String),
    /// The broker closed the connection (e.g. 320 CONNECTION_FORCED).
    #[error("closed by the broker: {reply_code} {reply_text}")]
    ClosedByPeer {
        /// The broker's reply code.
        reply_code: u16,
        /// The broker's text.
        reply_text: String,
    },
    /// The broker broke the protocol; we closed the connection with this reply code.
    #[error("protocol violation by the broker: {reply_code} {reply_text}")]
    ProtocolViolation {
        /// The reply code we sent (501 … 506).
        reply_code: u16,
        /// What was wrong.
        reply_text: String,
    },
    /// Nothing arrived from the broker for two heartbeat intervals.
    #[error("no heartbeat from the broker for two intervals")]
    HeartbeatTimeout,
    /// The handshake did not finish within the configured time.
    #[error("the handshake did not finish in time")]
    HandshakeTimeout,
    /// The socket closed while the connection was open.
    #[error("the socket closed without a connection.close")]
    SocketClosed,
}

/// A protocol violation by the peer: the connection closes with this code and text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub(crate) code: u16,
    pub(crate) text: String,
    /// Class and method id of the offending method, for `connection.close` (0, 0 if none).
    pub(crate) cause: (u16, u16),
}

impl Violation {
    pub(crate) fn new(code: u16, text: impl Into<String>) -> Self {
        Violation {
            code,
            text: text.into(),
            cause: (0, 0),
        }
    }

    /// Names the method that caused it.
    pub(crate) fn caused_by(mut self, method: &amq_protocol::protocol::AMQPClass) -> Self {
        self.cause = (method.get_amqp_class_id(), method.get_amqp_method_id());
        self
    }
}
