//! End-to-end payload encryption, as Python NuroPb does it (NUROPB-WIRE.md §6).
//!
//! A sender makes a fresh Fernet key per correlation id, wraps it with RSA-OAEP (MGF1-SHA-256,
//! SHA-256, no label) under the receiving service's public key, and sends
//! `base64(wrapped key) "." base64(Fernet token of the JSON body)`. The service unwraps the key with
//! its private key and answers under the same Fernet key; the caller decrypts the response with the
//! key it remembered.
//!
//! - [`keys`]: RSA keys and their PEM forms (SubjectPublicKeyInfo for public keys, as describe sends).
//! - [`symmetric`]: the Fernet key, and its wrapping under RSA-OAEP.
//! - [`sealed`]: the body format.
//! - [`key_store`]: remembered keys, bounded in number and age, so that commands and lost
//!   responses cannot leak memory as they do in Python.
//! - [`Encryptor`]: the four modes of a participant.
//!
//! Every failure to decrypt — tampered, truncated, wrongly keyed — is the one
//! [`CryptoError::Undecryptable`], so a sender learns nothing from which step failed.

pub mod encryptor;
pub mod key_store;
pub mod keys;
pub mod sealed;
pub mod symmetric;

pub use encryptor::Encryptor;
pub use key_store::{KeyStore, KeyStoreConfig};
pub use keys::{PrivateKey, PublicKey};
pub use symmetric::SymmetricKey;

/// Why encryption or decryption failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The body could not be decrypted: malformed, tampered with, truncated or under another key.
    #[error("encrypted payload could not be decrypted")]
    Undecryptable,
    /// No public key is known for the service (call describe first).
    #[error("Service public key not found for service: {0}")]
    NoPublicKey(String),
    /// This participant has no private key, so it cannot receive encrypted calls.
    #[error("no private key to decrypt or answer encrypted messages")]
    NoPrivateKey,
    /// No key is remembered for this correlation id (expired, already used, or never sent).
    #[error("no encryption key remembered for correlation id {0}")]
    NoKeyFor(String),
    /// A PEM document could not be read or written.
    #[error("bad key: {0}")]
    BadKey(String),
    /// RSA encryption failed (e.g. a key too small for the wrapped key).
    #[error("RSA encryption failed: {0}")]
    Rsa(String),
}
