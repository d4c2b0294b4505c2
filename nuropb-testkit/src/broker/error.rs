//! The errors the broker raises towards a client, with RabbitMQ's reply codes and texts.
//!
//! An [`AmqpError`] closes either one channel (a *soft* error: 403, 404, 405, 406) or the whole
//! connection (a *hard* error: 320, 5xx). Its reply text is built the way RabbitMQ builds it:
//! `"<NAME> - <explanation>"`, cut to 252 bytes plus `...` when it would not fit a short string.

use std::fmt;

pub use nuropb_proto::amqp::reply_code;
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
