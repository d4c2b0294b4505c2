//! The Fernet key of one correlation id, and its wrapping under RSA-OAEP.

use crate::crypto::CryptoError;
use crate::crypto::keys::{PrivateKey, PublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::sha2::Sha256;

/// A Fernet key: the URL-safe base64 text of 32 random bytes (44 characters).
///
/// It is the key *text* that Python wraps with RSA, not the 32 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SymmetricKey(String);

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(…)")
    }
}

impl SymmetricKey {
    /// A new random key from the OS RNG.
    pub fn generate() -> SymmetricKey {
        SymmetricKey(fernet::Fernet::generate_key())
    }

    /// A key from its text; `None` unless it is a valid Fernet key.
    pub fn from_text(text: &str) -> Option<SymmetricKey> {
        fernet::Fernet::new(text).map(|_| SymmetricKey(text.to_owned()))
    }

    /// The key text.
    pub fn as_text(&self) -> &str {
        &self.0
    }

    pub(crate) fn fernet(&self) -> fernet::Fernet {
        // Constructed only from generate_key or a validated text.
        fernet::Fernet::new(&self.0).expect("a SymmetricKey is a valid Fernet key")
    }

    /// Wraps the key text with RSA-OAEP (SHA-256, MGF1-SHA-256) under `public_key`, then encodes
    /// it in standard base64.
    pub fn wrap(&self, public_key: &PublicKey) -> Result<String, CryptoError> {
        let wrapped = public_key
            .oaep_encrypt::<Sha256>(self.0.as_bytes())
            .map_err(|e| CryptoError::Rsa(e.to_string()))?;
        Ok(STANDARD.encode(wrapped))
    }

    /// Unwraps a key wrapped by [`SymmetricKey::wrap`] under the public half of `private_key`.
    pub fn unwrap(
        wrapped_b64: &[u8],
        private_key: &PrivateKey,
    ) -> Result<SymmetricKey, CryptoError> {
        let wrapped = STANDARD
            .decode(wrapped_b64)
            .map_err(|_| CryptoError::Undecryptable)?;
        let text = private_key
            .oaep_decrypt::<Sha256>(&wrapped)
            .map_err(|_| CryptoError::Undecryptable)?;
        std::str::from_utf8(&text)
            .ok()
            .and_then(SymmetricKey::from_text)
            .ok_or(CryptoError::Undecryptable)
    }
}
