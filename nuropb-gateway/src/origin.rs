//! Which web origins may open a WebSocket or call the HTTP API from a browser: an allow-list
//! matched exactly (scheme, host and port), and the gateway's own origin.

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

/// The allowed origins.
#[derive(Clone, Debug, Default)]
pub(crate) struct Origins {
    /// Origins allowed besides the gateway's own, e.g. `https://app.example.com`.
    pub(crate) allowed: Vec<String>,
}

/// Why an origin was refused.
pub(crate) type Refused = String;

impl Origins {
    /// Whether a request with these headers may go on: no `Origin` header (not a browser), the
    /// gateway's own origin (`Origin`'s host is the `Host` header), or one on the list.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), Refused> {
        let Some(origin) = headers.get(ORIGIN) else {
            return Ok(());
        };
        let origin = origin
            .to_str()
            .map_err(|_| "the Origin header is not text".to_owned())?;
        if self.allowed.iter().any(|a| a == origin) {
            return Ok(());
        }
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        let own = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if own.is_some() && own == host {
            return Ok(());
        }
        Err(format!("origin {origin:?} is not allowed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(origin: &'static str, host: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, HeaderValue::from_static(origin));
        h.insert(HOST, HeaderValue::from_static(host));
        h
    }

    #[test]
    fn origins_match_exactly_never_by_suffix() {
        let origins = Origins {
            allowed: vec!["https://app.example.com".into()],
        };
        assert!(
            origins
                .check(&headers("https://app.example.com", "gw:80"))
                .is_ok()
        );
        assert!(
            origins
                .check(&headers("https://evilapp.example.com", "gw:80"))
                .is_err()
        );
        assert!(
            origins
                .check(&headers("https://app.example.com.evil", "gw:80"))
                .is_err()
        );
        assert!(
            origins
                .check(&headers("http://app.example.com", "gw:80"))
                .is_err()
        );
        assert!(origins.check(&headers("http://gw:80", "gw:80")).is_ok());
        assert!(origins.check(&HeaderMap::new()).is_ok());
    }
}
