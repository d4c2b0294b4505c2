//! What the gateway answers when it refuses or a call fails: the NuroPb error dict, and the HTTP
//! status that fits it.

use axum::http::StatusCode;
use nuropb_tokio::{ErrorKind, NuropbError};

/// An error with its HTTP status: the NuroPb error dict `{"error", "description"}` goes in the
/// body (HTTP) or in the frame (WebSocket).
#[derive(Clone, Debug)]
pub(crate) struct Refusal {
    /// The status over HTTP.
    pub(crate) status: StatusCode,
    /// The error dict.
    pub(crate) error: NuropbError,
    /// For 429: seconds until a request would be let through.
    pub(crate) retry_after: Option<u64>,
}

impl Refusal {
    /// A refusal of `kind` with `status`.
    pub(crate) fn new(status: StatusCode, kind: ErrorKind, description: impl Into<String>) -> Self {
        Refusal {
            status,
            error: NuropbError::new(kind, description),
            retry_after: None,
        }
    }

    /// A frame or body that is not what it should be (400).
    pub(crate) fn invalid(description: impl Into<String>) -> Self {
        Refusal::new(StatusCode::BAD_REQUEST, ErrorKind::Validation, description)
    }

    /// Bytes that are not JSON, or too many of them (400 or 413).
    pub(crate) fn message(status: StatusCode, description: impl Into<String>) -> Self {
        Refusal::new(status, ErrorKind::Message, description)
    }

    /// No token, or one that does not verify (401).
    pub(crate) fn unauthenticated(description: impl Into<String>) -> Self {
        Refusal::new(
            StatusCode::UNAUTHORIZED,
            ErrorKind::Authentication,
            description,
        )
    }

    /// Too many requests: retry after `seconds` (429).
    pub(crate) fn rate_limited(seconds: u64) -> Self {
        Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            error: NuropbError::new(
                ErrorKind::Other(RATE_LIMITED.to_owned()),
                format!("too many requests: retry after {seconds} s"),
            ),
            retry_after: Some(seconds),
        }
    }
}

/// The class name of the gateway's rate-limit error (not one of Python NuroPb's classes).
pub(crate) const RATE_LIMITED: &str = "NuropbRateLimitError";

/// The status that fits an error from the mesh: validation and message 400, authentication 401,
/// authorization 403, not delivered 404, timeout 504, anything else (handling, a service's own
/// exception) 500.
pub(crate) fn status_of(kind: &ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Validation | ErrorKind::Message => StatusCode::BAD_REQUEST,
        ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
        ErrorKind::Authorization => StatusCode::FORBIDDEN,
        ErrorKind::NotDelivered => StatusCode::NOT_FOUND,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::Transport => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Other(name) if name == RATE_LIMITED => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<NuropbError> for Refusal {
    fn from(error: NuropbError) -> Self {
        Refusal {
            status: status_of(&error.kind),
            error,
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_the_status_the_issue_names() {
        let cases = [
            (ErrorKind::Validation, 400),
            (ErrorKind::Message, 400),
            (ErrorKind::Authentication, 401),
            (ErrorKind::Authorization, 403),
            (ErrorKind::NotDelivered, 404),
            (ErrorKind::Timeout, 504),
            (ErrorKind::Handling, 500),
            (ErrorKind::Other("KeyError".into()), 500),
        ];
        for (kind, status) in cases {
            assert_eq!(status_of(&kind).as_u16(), status, "{kind}");
        }
        assert_eq!(Refusal::rate_limited(2).status.as_u16(), 429);
    }
}
