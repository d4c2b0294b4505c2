//! The encrypted body: `base64(wrapped key) "." base64(Fernet token)`.
//!
//! The Fernet token is itself URL-safe base64; Python encodes it in standard base64 once more.

use crate::crypto::CryptoError;
use crate::crypto::symmetric::SymmetricKey;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Fernet's allowance for clocks that run ahead; passing `u64::MAX - SKEW` as the current time
/// disables its timestamp checks, which Python's `Fernet.decrypt` without a ttl does not make.
const FERNET_MAX_CLOCK_SKEW: u64 = 60;

/// Encrypts `plaintext` under `key` into a body, with `wrapped_key` (from [`SymmetricKey::wrap`])
/// in front. `unix_time` (seconds) is stamped into the Fernet token.
pub fn seal(wrapped_key: &str, key: &SymmetricKey, plaintext: &[u8], unix_time: u64) -> Vec<u8> {
    let token = key.fernet().encrypt_at_time(plaintext, unix_time);
    let mut body = Vec::with_capacity(wrapped_key.len() + 1 + token.len() * 4 / 3 + 4);
    body.extend_from_slice(wrapped_key.as_bytes());
    body.push(b'.');
    body.extend_from_slice(STANDARD.encode(token).as_bytes());
    body
}

/// Splits a body at its first `.` into the wrapped key and the encoded token.
pub fn split(body: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    let dot = body
        .iter()
        .position(|b| *b == b'.')
        .ok_or(CryptoError::Undecryptable)?;
    Ok((&body[..dot], &body[dot + 1..]))
}

/// Decrypts the token part of a body under `key`. Token timestamps are not checked, as in Python.
pub fn open(token_b64: &[u8], key: &SymmetricKey) -> Result<Vec<u8>, CryptoError> {
    let token = STANDARD
        .decode(token_b64)
        .map_err(|_| CryptoError::Undecryptable)?;
    let token = std::str::from_utf8(&token).map_err(|_| CryptoError::Undecryptable)?;
    key.fernet()
        .decrypt_at_time(token, None, u64::MAX - FERNET_MAX_CLOCK_SKEW)
        .map_err(|_| CryptoError::Undecryptable)
}
