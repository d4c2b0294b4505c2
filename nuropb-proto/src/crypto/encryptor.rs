//! The four encryption modes of a participant (NUROPB-WIRE.md §6).
//!
//! | mode | who | does |
//! |---|---|---|
//! | 1 | caller | [`Encryptor::encrypt_call`]: new key, wrapped under the service's public key |
//! | 3 | service | [`Encryptor::decrypt_call`]: unwraps with its private key, keeps the key for the answer |
//! | 4 | service | [`Encryptor::encrypt_response`]: answers under the kept key, wrapped under its own public key |
//! | 2 | caller | [`Encryptor::decrypt_response`]: decrypts with the key it kept, ignoring the wrapped part |
//!
//! Keys a caller keeps and keys a service keeps live in separate stores, so a service may call
//! itself. Commands expect no answer, so their keys are not kept at all.

use crate::crypto::CryptoError;
use crate::crypto::key_store::{KeyStore, KeyStoreConfig};
use crate::crypto::keys::{PrivateKey, PublicKey};
use crate::crypto::sealed;
use crate::crypto::symmetric::SymmetricKey;
use std::collections::HashMap;
use std::time::Instant;

/// A participant's keys: its own private key (services), the public keys of services it calls,
/// and the Fernet keys of calls in flight.
///
/// ```
/// use nuropb_proto::crypto::{keys, Encryptor, KeyStoreConfig};
/// use std::time::Instant;
///
/// let now = Instant::now();
/// let service_key = keys::generate(2048).unwrap();
/// let mut service = Encryptor::new(Some(service_key.clone()), KeyStoreConfig::default());
/// let mut client = Encryptor::new(None, KeyStoreConfig::default());
/// client.add_public_key("svc", service_key.to_public_key());
///
/// let body = client.encrypt_call("svc", "corr-1", b"{\"q\": 1}", true, 1_700_000_000, now).unwrap();
/// assert_eq!(service.decrypt_call("corr-1", &body, true, now).unwrap(), b"{\"q\": 1}");
/// let answer = service.encrypt_response("corr-1", b"{\"a\": 2}", 1_700_000_000, now).unwrap();
/// assert_eq!(client.decrypt_response("corr-1", &answer, now).unwrap(), b"{\"a\": 2}");
/// ```
#[derive(Debug)]
pub struct Encryptor {
    private_key: Option<PrivateKey>,
    public_key: Option<PublicKey>,
    service_keys: HashMap<String, PublicKey>,
    /// Keys of requests this participant sent, until their response.
    sent: KeyStore,
    /// Keys of requests this participant received, until it answers.
    received: KeyStore,
}

impl Encryptor {
    /// A participant with an optional private key (a service needs one to receive encrypted calls).
    pub fn new(private_key: Option<PrivateKey>, store: KeyStoreConfig) -> Self {
        Encryptor {
            public_key: private_key.as_ref().map(PrivateKey::to_public_key),
            private_key,
            service_keys: HashMap::new(),
            sent: KeyStore::new(store),
            received: KeyStore::new(store),
        }
    }

    /// This participant's own public key, if it has a private key.
    pub fn public_key(&self) -> Option<&PublicKey> {
        self.public_key.as_ref()
    }

    /// Remembers the public key of `service` (from its description).
    pub fn add_public_key(&mut self, service: &str, key: PublicKey) {
        self.service_keys.insert(service.to_owned(), key);
    }

    /// Whether the public key of `service` is known.
    pub fn has_public_key(&self, service: &str) -> bool {
        self.service_keys.contains_key(service)
    }

    /// Mode 1: encrypts the body of a call to `service`. A request (`expects_response`) keeps its
    /// key until [`Encryptor::decrypt_response`]; a command's key is not kept.
    pub fn encrypt_call(
        &mut self,
        service: &str,
        correlation_id: &str,
        plaintext: &[u8],
        expects_response: bool,
        unix_time: u64,
        now: Instant,
    ) -> Result<Vec<u8>, CryptoError> {
        let public_key = self
            .service_keys
            .get(service)
            .ok_or_else(|| CryptoError::NoPublicKey(service.to_owned()))?;
        let key = SymmetricKey::generate();
        let body = sealed::seal(&key.wrap(public_key)?, &key, plaintext, unix_time);
        if expects_response {
            self.sent.insert(correlation_id, key, now);
        }
        Ok(body)
    }

    /// Mode 3: decrypts the body of a call to this service. A request (`expects_response`) keeps
    /// its key for [`Encryptor::encrypt_response`].
    pub fn decrypt_call(
        &mut self,
        correlation_id: &str,
        body: &[u8],
        expects_response: bool,
        now: Instant,
    ) -> Result<Vec<u8>, CryptoError> {
        let private_key = self.private_key.as_ref().ok_or(CryptoError::NoPrivateKey)?;
        let (wrapped, token) = sealed::split(body)?;
        let key = SymmetricKey::unwrap(wrapped, private_key)?;
        let plaintext = sealed::open(token, &key)?;
        if expects_response {
            self.received.insert(correlation_id, key, now);
        }
        Ok(plaintext)
    }

    /// Mode 4: encrypts the response to a call decrypted by [`Encryptor::decrypt_call`], under its
    /// key, which is then forgotten.
    pub fn encrypt_response(
        &mut self,
        correlation_id: &str,
        plaintext: &[u8],
        unix_time: u64,
        now: Instant,
    ) -> Result<Vec<u8>, CryptoError> {
        let public_key = self.public_key.as_ref().ok_or(CryptoError::NoPrivateKey)?;
        let key = self
            .received
            .take(correlation_id, now)
            .ok_or_else(|| CryptoError::NoKeyFor(correlation_id.to_owned()))?;
        Ok(sealed::seal(
            &key.wrap(public_key)?,
            &key,
            plaintext,
            unix_time,
        ))
    }

    /// Mode 2: decrypts the response to a call encrypted by [`Encryptor::encrypt_call`], with the
    /// key kept for it, which is then forgotten.
    pub fn decrypt_response(
        &mut self,
        correlation_id: &str,
        body: &[u8],
        now: Instant,
    ) -> Result<Vec<u8>, CryptoError> {
        let key = self
            .sent
            .take(correlation_id, now)
            .ok_or_else(|| CryptoError::NoKeyFor(correlation_id.to_owned()))?;
        let (_, token) = sealed::split(body)?;
        sealed::open(token, &key)
    }

    /// Forgets the key of a request this participant sent, e.g. when its deadline passed.
    pub fn forget_sent(&mut self, correlation_id: &str) {
        self.sent.forget(correlation_id);
    }

    /// Forgets the key of a request this participant received and will not answer.
    pub fn forget_received(&mut self, correlation_id: &str) {
        self.received.forget(correlation_id);
    }

    /// How many keys are kept, sent and received.
    pub fn kept_keys(&self) -> (usize, usize) {
        (self.sent.len(), self.received.len())
    }
}
