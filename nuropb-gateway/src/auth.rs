//! Who a client is: the authorize hook that turns a token into an [`Identity`], and where the
//! token comes from (the `Authorization` header, an `Authorization` cookie, a
//! `Sec-WebSocket-Protocol` of `bearer.TOKEN`, or a WebSocket's `authenticate` frame).

use crate::error::Refusal;
use axum::http::HeaderMap;
use nuropb_tokio::{BoxFuture, NuropbError};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who a verified token belongs to, and until when it holds.
///
/// ```
/// use nuropb_gateway::Identity;
/// use std::time::{Duration, SystemTime};
/// let me = Identity::new("u-1").username("ada").expires_at(SystemTime::now() + Duration::from_secs(60));
/// assert_eq!(me.user_id.as_deref(), Some("u-1"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Identity {
    /// The user, passed to services as `context["user_id"]`; `None` for an anonymous client.
    pub user_id: Option<String>,
    /// A name to show (the hello event's `username`).
    pub username: Option<String>,
    /// When the token stops being valid: a WebSocket authenticated with it is closed (code
    /// 4001) then.
    pub expires_at: Option<SystemTime>,
    /// The token's claims, as the hook found them.
    pub claims: Value,
}

impl Identity {
    /// The identity of `user_id`, with no expiry and no claims.
    pub fn new(user_id: impl Into<String>) -> Identity {
        Identity {
            user_id: Some(user_id.into()),
            ..Identity::default()
        }
    }

    /// An anonymous client.
    pub fn anonymous() -> Identity {
        Identity::default()
    }

    /// Sets the name to show.
    pub fn username(mut self, name: impl Into<String>) -> Self {
        self.username = Some(name.into());
        self
    }

    /// Sets when the token expires.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sets the claims.
    pub fn claims(mut self, claims: Value) -> Self {
        self.claims = claims;
        self
    }

    /// The identity `claims` describe: `user_id` from the `user_id` or else the `sub` claim,
    /// `username` from `username`, `preferred_username`, `name` or `email`, expiry from `exp`
    /// (seconds since the epoch).
    pub fn from_claims(claims: Value) -> Identity {
        let text = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| claims.get(*k).and_then(Value::as_str).map(str::to_owned))
        };
        Identity {
            user_id: text(&["user_id", "sub"]),
            username: text(&["username", "preferred_username", "name", "email"]),
            expires_at: claims
                .get("exp")
                .and_then(Value::as_u64)
                .map(|s| UNIX_EPOCH + Duration::from_secs(s)),
            claims,
        }
    }

    /// Whether the token has expired at `now`.
    pub(crate) fn expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// The authorize hook: a token (without its `Bearer ` prefix) in, its [`Identity`] out, or an
/// error (an `NuropbAuthenticationError` for a token that does not verify).
pub type Authorizer = Arc<dyn Fn(String) -> BoxFuture<Result<Identity, NuropbError>> + Send + Sync>;

/// Makes an [`Authorizer`] of an async function.
pub(crate) fn authorizer<F, Fut>(hook: F) -> Authorizer
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Identity, NuropbError>> + Send + 'static,
{
    Arc::new(move |token| Box::pin(hook(token)) as BoxFuture<Result<Identity, NuropbError>>)
}

/// The prefixes nuropb-gw strips from a bearer token, in its order: `Bearer :`, `Bearer:`,
/// `Bearer ` and `Bearer`.
const BEARER_PREFIXES: [&str; 4] = ["Bearer :", "Bearer:", "Bearer ", "Bearer"];

/// The token without its bearer prefix (as nuropb-gw reads it); `None` when nothing is left.
///
/// ```
/// use nuropb_gateway::strip_bearer;
/// assert_eq!(strip_bearer("Bearer :abc"), Some("abc"));
/// assert_eq!(strip_bearer("Bearer abc"), Some("abc"));
/// assert_eq!(strip_bearer("abc"), Some("abc"));
/// assert_eq!(strip_bearer("Bearer "), None);
/// ```
pub fn strip_bearer(value: &str) -> Option<&str> {
    let mut token = value.trim();
    for prefix in BEARER_PREFIXES {
        if let Some(rest) = token.strip_prefix(prefix) {
            token = rest.trim();
            break;
        }
    }
    (!token.is_empty()).then_some(token)
}

/// The longest token the gateway reads (16 KiB).
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The WebSocket subprotocol that carries a token: `bearer.TOKEN`.
pub(crate) const PROTOCOL_PREFIX: &str = "bearer.";

/// The subprotocol the gateway speaks, which a client offering a `bearer.` one must offer too.
pub(crate) const PROTOCOL: &str = "nuropb";

/// Where a token was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// The `Authorization` header.
    Header,
    /// The `Authorization` cookie.
    Cookie,
    /// A `Sec-WebSocket-Protocol` of `bearer.TOKEN`.
    Protocol,
}

/// The token a request carries, and where: the `Authorization` header first, then the
/// `Authorization` cookie, then (for a WebSocket) a `bearer.TOKEN` subprotocol. A token too
/// long to be one is refused.
pub(crate) fn token_of(headers: &HeaderMap) -> Result<Option<(String, Source)>, Refusal> {
    let found = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| (v.to_owned(), Source::Header))
        .or_else(|| cookie(headers, "Authorization").map(|v| (v, Source::Cookie)))
        .or_else(|| {
            protocols(headers)
                .find_map(|p| p.strip_prefix(PROTOCOL_PREFIX).map(str::to_owned))
                .map(|v| (v, Source::Protocol))
        });
    let Some((raw, source)) = found else {
        return Ok(None);
    };
    if raw.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::unauthenticated(format!(
            "the token is longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    Ok(strip_bearer(&raw).map(|t| (t.to_owned(), source)))
}

/// The subprotocols a WebSocket upgrade offers.
pub(crate) fn protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// The value of cookie `name`, percent-decoding nothing (tokens are URL-safe).
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn the_header_wins_over_the_cookie_and_the_protocol() {
        let h = headers(&[
            ("authorization", "Bearer :from-header"),
            ("cookie", "a=b; Authorization=from-cookie"),
            ("sec-websocket-protocol", "nuropb, bearer.from-protocol"),
        ]);
        assert_eq!(
            token_of(&h).unwrap(),
            Some(("from-header".into(), Source::Header))
        );
        let h = headers(&[
            ("cookie", "a=b; Authorization=from-cookie"),
            ("sec-websocket-protocol", "nuropb, bearer.from-protocol"),
        ]);
        assert_eq!(
            token_of(&h).unwrap(),
            Some(("from-cookie".into(), Source::Cookie))
        );
        let h = headers(&[("sec-websocket-protocol", "nuropb, bearer.from-protocol")]);
        assert_eq!(
            token_of(&h).unwrap(),
            Some(("from-protocol".into(), Source::Protocol))
        );
        assert_eq!(token_of(&headers(&[])).unwrap(), None);
    }

    #[test]
    fn claims_name_the_user_and_the_expiry() {
        let id = Identity::from_claims(serde_json::json!({"sub": "u1", "email": "a@b", "exp": 10}));
        assert_eq!(id.user_id.as_deref(), Some("u1"));
        assert_eq!(id.username.as_deref(), Some("a@b"));
        assert!(id.expired(UNIX_EPOCH + Duration::from_secs(10)));
        assert!(!id.expired(UNIX_EPOCH + Duration::from_secs(9)));
    }
}
