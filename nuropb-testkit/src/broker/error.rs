//! The errors the broker raises towards a client, with RabbitMQ's reply codes and texts.
//!
//! An [`AmqpError`] closes either one channel (a *soft* error: 403, 404, 405, 406) or the whole
//! connection (a *hard* error: 320, 5xx). Its reply text is built the way RabbitMQ builds it:
//! `"<NAME> - <explanation>"`, cut to 252 bytes plus `...` when it would not fit a short string.

use std::fmt;

/// AMQP 0-9-1 reply codes (the spec's `constant` list), as RabbitMQ uses them.
pub mod reply_code {
    /// Normal close.
    pub const REPLY_SUCCESS: u16 = 200;
    /// `basic.return`: a mandatory message had no route.
    pub const NO_ROUTE: u16 = 312;
    /// The broker forced the connection closed (management action, shutdown).
    pub const CONNECTION_FORCED: u16 = 320;
    /// The client lacks the right: bad login, reserved names, exclusive consumers.
    pub const ACCESS_REFUSED: u16 = 403;
    /// A named exchange or queue does not exist.
    pub const NOT_FOUND: u16 = 404;
    /// An exclusive queue belongs to another connection.
    pub const RESOURCE_LOCKED: u16 = 405;
    /// A precondition failed: inequivalent redeclare, unknown delivery tag, bad argument.
    pub const PRECONDITION_FAILED: u16 = 406;
    /// The client sent a malformed frame.
    pub const FRAME_ERROR: u16 = 501;
    /// The client sent a frame whose fields are not valid.
    pub const SYNTAX_ERROR: u16 = 502;
    /// The client sent a method the server does not accept from a client.
    pub const COMMAND_INVALID: u16 = 503;
    /// The client used a channel wrongly (not opened, second open).
    pub const CHANNEL_ERROR: u16 = 504;
    /// The client sent a frame that was not expected at this point.
    pub const UNEXPECTED_FRAME: u16 = 505;
    /// The server ran out of a resource.
    pub const RESOURCE_ERROR: u16 = 506;
    /// The client tried something the server does not allow (tuning, reused consumer tag).
    pub const NOT_ALLOWED: u16 = 530;
    /// The client asked for something the server does not implement.
    pub const NOT_IMPLEMENTED: u16 = 540;
    /// The server hit an internal error.
    pub const INTERNAL_ERROR: u16 = 541;

    /// The name RabbitMQ puts in front of a reply text for `code`.
    pub fn name(code: u16) -> &'static str {
        match code {
            REPLY_SUCCESS => "REPLY_SUCCESS",
            NO_ROUTE => "NO_ROUTE",
            CONNECTION_FORCED => "CONNECTION_FORCED",
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

    /// Whether an error with `code` closes the connection rather than the channel.
    pub fn is_hard(code: u16) -> bool {
        !matches!(
            code,
            NO_ROUTE | ACCESS_REFUSED | NOT_FOUND | RESOURCE_LOCKED | PRECONDITION_FAILED
        )
    }
}

use reply_code::*;

/// An error to report to the client with `channel.close` or `connection.close`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AmqpError {
    /// The reply code.
    pub(crate) code: u16,
    /// The full reply text, `NAME - explanation`.
    pub(crate) text: String,
    /// The class and method that failed; `None` until the dispatcher fills in the current method.
    pub(crate) method: Option<(u16, u16)>,
}

impl AmqpError {
    /// An error with `code` and RabbitMQ's text layout.
    pub(crate) fn new(code: u16, explanation: impl fmt::Display) -> Self {
        AmqpError {
            code,
            text: format!("{} - {}", name(code), explanation),
            method: None,
        }
    }

    /// 404 `NOT_FOUND`.
    pub(crate) fn not_found(explanation: impl fmt::Display) -> Self {
        Self::new(NOT_FOUND, explanation)
    }

    /// 403 `ACCESS_REFUSED`.
    pub(crate) fn access_refused(explanation: impl fmt::Display) -> Self {
        Self::new(ACCESS_REFUSED, explanation)
    }

    /// 403 `ACCESS_REFUSED` for touching the default exchange, in RabbitMQ's words.
    pub(crate) fn default_exchange() -> Self {
        Self::access_refused("operation not permitted on the default exchange")
    }

    /// 405 `RESOURCE_LOCKED` for an exclusive queue of another connection, in RabbitMQ's words.
    pub(crate) fn resource_locked(resource: &str) -> Self {
        Self::new(
            RESOURCE_LOCKED,
            format_args!(
                "cannot obtain exclusive access to locked {resource}. It could be originally \
                 declared on another connection or the exclusive property value does not match \
                 that of the original declaration."
            ),
        )
    }

    /// 406 `PRECONDITION_FAILED`.
    pub(crate) fn precondition_failed(explanation: impl fmt::Display) -> Self {
        Self::new(PRECONDITION_FAILED, explanation)
    }

    /// 503 `COMMAND_INVALID`.
    pub(crate) fn command_invalid(explanation: impl fmt::Display) -> Self {
        Self::new(COMMAND_INVALID, explanation)
    }

    /// 503 `COMMAND_INVALID - unimplemented method`: a method a client may not send.
    pub(crate) fn unimplemented_method() -> Self {
        Self::command_invalid("unimplemented method")
    }

    /// 504 `CHANNEL_ERROR`.
    pub(crate) fn channel_error(explanation: impl fmt::Display) -> Self {
        Self::new(CHANNEL_ERROR, explanation)
    }

    /// 505 `UNEXPECTED_FRAME`.
    pub(crate) fn unexpected_frame(explanation: impl fmt::Display) -> Self {
        Self::new(UNEXPECTED_FRAME, explanation)
    }

    /// 501 `FRAME_ERROR`.
    pub(crate) fn frame_error(explanation: impl fmt::Display) -> Self {
        Self::new(FRAME_ERROR, explanation).at(0, 0)
    }

    /// 530 `NOT_ALLOWED`.
    pub(crate) fn not_allowed(explanation: impl fmt::Display) -> Self {
        Self::new(NOT_ALLOWED, explanation)
    }

    /// 540 `NOT_IMPLEMENTED`.
    pub(crate) fn not_implemented(explanation: impl fmt::Display) -> Self {
        Self::new(NOT_IMPLEMENTED, explanation)
    }

    /// 541 `INTERNAL_ERROR`.
    pub(crate) fn internal(explanation: impl fmt::Display) -> Self {
        Self::new(INTERNAL_ERROR, explanation)
    }

    /// Names the failing class and method (`0, 0` for errors that belong to no method).
    pub(crate) fn at(mut self, class_id: u16, method_id: u16) -> Self {
        self.method = Some((class_id, method_id));
        self
    }

    /// Whether the error closes the connection.
    pub(crate) fn is_hard(&self) -> bool {
        is_hard(self.code)
    }

    /// The failing class and method, `0, 0` when none was named.
    pub(crate) fn class_method(&self) -> (u16, u16) {
        self.method.unwrap_or((0, 0))
    }
}

/// RabbitMQ's `rs/1`: `kind 'name' in vhost 'vhost'`.
pub(crate) fn resource(kind: &str, name: &str, vhost: &str) -> String {
    format!("{kind} '{name}' in vhost '{vhost}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_follow_rabbitmq_layout() {
        let e = AmqpError::not_found(format_args!("no queue 'q' in vhost '/'"));
        assert_eq!(e.text, "NOT_FOUND - no queue 'q' in vhost '/'");
        assert!(!e.is_hard());
        assert!(AmqpError::not_allowed("x").is_hard());
        assert!(AmqpError::unimplemented_method().is_hard());
        assert_eq!(AmqpError::frame_error("x").class_method(), (0, 0));
    }
}
