//! Verifying JSON Web Tokens: HS256 with a shared secret, RS256 or ES256 with a public key in
//! PEM; `exp` is required and checked, `nbf` checked when present, with no leeway.

use crate::auth::{Authorizer, Identity};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use nuropb_tokio::{BoxFuture, ErrorKind, NuropbError};
use serde_json::Value;
use std::sync::Arc;

/// Verifies JWTs with one key; [`JwtVerifier::authorizer`] makes it the gateway's authorize
/// hook.
///
/// ```
/// use nuropb_gateway::JwtVerifier;
/// let verifier = JwtVerifier::hs256(b"a secret of at least thirty-two bytes!").unwrap();
/// let refused = verifier.verify("not.a.token").unwrap_err();
/// assert_eq!(refused.kind, nuropb_tokio::ErrorKind::Authentication);
/// ```
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

fn refused(description: impl Into<String>) -> NuropbError {
    NuropbError::new(ErrorKind::Authentication, description)
}

fn validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    validation
}

impl JwtVerifier {
    /// Tokens signed with HMAC-SHA256 and `secret`, which must be at least 32 bytes.
    pub fn hs256(secret: &[u8]) -> Result<JwtVerifier, NuropbError> {
        if secret.len() < 32 {
            return Err(NuropbError::new(
                ErrorKind::Validation,
                format!(
                    "the HS256 secret is {} bytes; at least 32 are needed",
                    secret.len()
                ),
            ));
        }
        let key = DecodingKey::from_secret(secret)
            .map_err(|e| NuropbError::new(ErrorKind::Validation, e.to_string()))?;
        Ok(JwtVerifier {
            key,
            validation: validation(Algorithm::HS256),
        })
    }

    /// Tokens signed with the private key of `pem`, a public key: RSA (RS256) or P-256 (ES256).
    pub fn public_key_pem(pem: &[u8]) -> Result<JwtVerifier, NuropbError> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(JwtVerifier {
                key,
                validation: validation(Algorithm::RS256),
            });
        }
        DecodingKey::from_ec_pem(pem)
            .map(|key| JwtVerifier {
                key,
                validation: validation(Algorithm::ES256),
            })
            .map_err(|e| {
                NuropbError::new(
                    ErrorKind::Validation,
                    format!("not an RSA or P-256 public key in PEM: {e}"),
                )
            })
    }

    /// The identity of a valid `token`, or an `NuropbAuthenticationError` saying why it is not
    /// (never the token itself).
    pub fn verify(&self, token: &str) -> Result<Identity, NuropbError> {
        let data = jsonwebtoken::decode::<Value>(token, &self.key, &self.validation)
            .map_err(|e| refused(format!("the token is not valid: {e}")))?;
        let identity = Identity::from_claims(data.claims);
        if identity.user_id.is_none() {
            return Err(refused("the token names no user (no sub or user_id claim)"));
        }
        Ok(identity)
    }

    /// This verifier as the gateway's authorize hook.
    pub fn authorizer(self) -> Authorizer {
        let verifier = Arc::new(self);
        Arc::new(move |token: String| {
            let result = verifier.verify(&token);
            Box::pin(async move { result }) as BoxFuture<Result<Identity, NuropbError>>
        })
    }
}
