//! RSA keys and their PEM forms.
//!
//! Public keys travel in service descriptions as PEM SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`), the
//! form Python's `cryptography` writes; PKCS#1 (`BEGIN RSA PUBLIC KEY`) is read too. Private keys
//! are read from PKCS#8 or PKCS#1 PEM and written as PKCS#8.

use crate::crypto::CryptoError;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};

/// An RSA public key.
pub type PublicKey = rsa::PublicKey;
/// An RSA private key.
pub type PrivateKey = rsa::PrivateKey;

/// Makes a new RSA private key of `bits` bits (2048 as Python's examples use), from the OS RNG.
pub fn generate(bits: usize) -> Result<PrivateKey, CryptoError> {
    PrivateKey::new(&mut getrandom::SysRng, bits).map_err(|e| CryptoError::BadKey(e.to_string()))
}

/// Reads a public key from PEM: SubjectPublicKeyInfo or PKCS#1.
pub fn public_key_from_pem(pem: &str) -> Result<PublicKey, CryptoError> {
    PublicKey::from_public_key_pem(pem)
        .or_else(|_| PublicKey::from_pkcs1_pem(pem))
        .map_err(|e| CryptoError::BadKey(e.to_string()))
}

/// Writes a public key as PEM SubjectPublicKeyInfo with `\n` line ends, as describe sends it.
pub fn public_key_to_pem(key: &PublicKey) -> Result<String, CryptoError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| CryptoError::BadKey(e.to_string()))
}

/// Reads a private key from PEM: PKCS#8 or PKCS#1.
pub fn private_key_from_pem(pem: &str) -> Result<PrivateKey, CryptoError> {
    PrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| PrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| CryptoError::BadKey(e.to_string()))
}

/// Writes a private key as PKCS#8 PEM.
pub fn private_key_to_pem(key: &PrivateKey) -> Result<String, CryptoError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| CryptoError::BadKey(e.to_string()))
}
