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

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;
    use std::time::{SystemTime, UNIX_EPOCH};

    const SECRET: &[u8] = b"thirty-two bytes of secret, or more";
    /// A P-256 key made for these tests only.
    const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgIecqvJYUMm0cOYWB
Pz1o4MvSf78IbBbiUpWloBlJ6P2hRANCAAR3pw0+fFg2iC0nowhDTxakwG87wCxb
sITfw0994rd+w2wSLES/APuWzAYOJn0JyZ9HegpVu8l87iMb1Jemq1ES
-----END PRIVATE KEY-----
";
    const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEd6cNPnxYNogtJ6MIQ08WpMBvO8As
W7CE38NPfeK3fsNsEixEvwD7lswGDiZ9CcmfR3oKVbvJfO4jG9SXpqtREg==
-----END PUBLIC KEY-----
";

    fn now() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn hs(claims: Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap()
    }

    fn refusal(verifier: &JwtVerifier, token: &str) -> String {
        let e = verifier.verify(token).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Authentication);
        assert!(!e.description.contains(token), "the token is never echoed");
        e.description
    }

    #[test]
    fn hs256_checks_signature_exp_and_nbf() {
        let v = JwtVerifier::hs256(SECRET).unwrap();
        let id = v
            .verify(&hs(json!({"sub": "u1", "exp": now() + 60})))
            .unwrap();
        assert_eq!(id.user_id.as_deref(), Some("u1"));
        assert!(id.expires_at.is_some());
        assert!(refusal(&v, &hs(json!({"sub": "u1", "exp": now() - 1}))).contains("Expired"));
        assert!(
            refusal(
                &v,
                &hs(json!({"sub": "u1", "exp": now() + 60, "nbf": now() + 30}))
            )
            .contains("Immature")
        );
        assert!(refusal(&v, &hs(json!({"sub": "u1"}))).contains("exp"));
        refusal(&v, &hs(json!({"exp": now() + 60})));
        let other = JwtVerifier::hs256(b"another secret that is long enough!!").unwrap();
        assert!(
            refusal(&other, &hs(json!({"sub": "u1", "exp": now() + 60}))).contains("Signature")
        );
        assert!(JwtVerifier::hs256(b"short").is_err());
    }

    #[test]
    fn rs256_and_es256_from_public_keys_in_pem() {
        let rsa = nuropb_proto::crypto::keys::generate(2048).unwrap();
        let private = nuropb_proto::crypto::keys::private_key_to_pem(&rsa).unwrap();
        let public = nuropb_proto::crypto::keys::public_key_to_pem(&rsa.to_public_key()).unwrap();
        let claims = json!({"sub": "r1", "exp": now() + 60});
        let token = encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_rsa_pem(private.as_bytes()).unwrap(),
        )
        .unwrap();
        let v = JwtVerifier::public_key_pem(public.as_bytes()).unwrap();
        assert_eq!(v.verify(&token).unwrap().user_id.as_deref(), Some("r1"));
        // An HS256 token cannot pass as RS256 (no algorithm confusion).
        refusal(&v, &hs(claims.clone()));

        let token = encode(
            &Header::new(Algorithm::ES256),
            &claims,
            &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
        )
        .unwrap();
        let v = JwtVerifier::public_key_pem(EC_PUBLIC.as_bytes()).unwrap();
        assert_eq!(v.verify(&token).unwrap().user_id.as_deref(), Some("r1"));
        assert!(JwtVerifier::public_key_pem(b"not a key").is_err());
    }
}
