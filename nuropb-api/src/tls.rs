//! TLS client configuration with rustls (ring provider), as Python NuroPb's connection
//! properties allow: a CA file, a client certificate and key, verification on or off.

use crate::settings::TlsSettings;
use nuropb_proto::{ErrorKind, NuropbError};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use std::sync::Arc;

fn tls_error(what: impl std::fmt::Display) -> NuropbError {
    NuropbError::new(ErrorKind::Transport, format!("TLS configuration: {what}"))
}

/// Builds the rustls client configuration for `settings`.
///
/// The ring provider is chosen explicitly, so that no process-wide default is needed. Without a
/// CA file, the Mozilla roots of `webpki-roots` are trusted.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>, NuropbError> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let builder = if settings.verify {
        let mut roots = RootCertStore::empty();
        match &settings.cafile {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
                for cert in certs {
                    let cert = cert.map_err(|e| tls_error(format!("{}: {e}", path.display())))?;
                    roots.add(cert).map_err(tls_error)?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    };
    let config = match (&settings.certfile, &settings.keyfile) {
        (Some(certfile), keyfile) => {
            let chain = CertificateDer::pem_file_iter(certfile)
                .map_err(|e| tls_error(format!("{}: {e}", certfile.display())))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_error(format!("{}: {e}", certfile.display())))?;
            let keyfile = keyfile.as_ref().unwrap_or(certfile);
            let key = PrivateKeyDer::from_pem_file(keyfile)
                .map_err(|e| tls_error(format!("{}: {e}", keyfile.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(tls_error)?
        }
        (None, _) => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The server name to verify, from a host name or an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, NuropbError> {
    ServerName::try_from(host.to_owned()).map_err(|e| tls_error(format!("{host}: {e}")))
}

/// `verify = false`: accept any certificate (Python's `CERT_NONE`), still checking signatures
/// of the handshake itself.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
