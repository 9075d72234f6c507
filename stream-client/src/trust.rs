//! How the client decides to trust the server certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::ClientError;

/// Which server certificates the client accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// Exactly the certificate with this SHA-256 (of its DER bytes), as printed by
    /// `flashsale serve`. The name is not checked; the handshake signature is.
    Fingerprint([u8; 32]),
    /// Certificates chaining to a CA in this PEM file, for the server's name.
    CaFile(PathBuf),
    /// Any certificate (encryption without authentication; for tests and local use only).
    Insecure,
}

impl Trust {
    /// Parses a SHA-256 fingerprint in hex (64 digits; `:` separators and case are ignored).
    pub fn from_fingerprint_hex(hex_digits: &str) -> Result<Trust, ClientError> {
        let cleaned: String = hex_digits
            .chars()
            .filter(|c| *c != ':' && !c.is_whitespace())
            .collect();
        let cleaned = cleaned
            .strip_prefix("sha256/")
            .or_else(|| cleaned.strip_prefix("SHA256:"))
            .unwrap_or(&cleaned);
        let bytes = hex::decode(cleaned)
            .map_err(|e| ClientError::Config(format!("fingerprint is not hex: {e}")))?;
        let digest: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            ClientError::Config(format!(
                "fingerprint must be 32 bytes (64 hex digits), got {}",
                b.len()
            ))
        })?;
        Ok(Trust::Fingerprint(digest))
    }

    /// A rustls client configuration (TLS 1.3, ALPN `flashsale/1`) implementing this trust.
    pub fn rustls_config(&self) -> Result<rustls::ClientConfig, ClientError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let mut config = match self {
            Trust::Fingerprint(digest) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    pinned: Some(*digest),
                    provider,
                }))
                .with_no_client_auth(),
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                    pinned: None,
                    provider,
                }))
                .with_no_client_auth(),
            Trust::CaFile(path) => builder
                .with_root_certificates(load_roots(path)?)
                .with_no_client_auth(),
        };
        config.alpn_protocols = vec![flashsale_protocol::stream::ALPN.to_vec()];
        Ok(config)
    }
}

fn load_roots(path: &Path) -> Result<rustls::RootCertStore, ClientError> {
    let bad = |reason: String| ClientError::Config(format!("CA file {}: {reason}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block found".into()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    Ok(roots)
}

/// Accepts the server certificate whose SHA-256 matches `pinned` (any, when `None`), and still
/// checks that the server holds its key (handshake signatures).
#[derive(Debug)]
struct PinnedVerifier {
    pinned: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(pinned) = self.pinned else {
            return Ok(ServerCertVerified::assertion());
        };
        let actual: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if actual == pinned {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "server certificate fingerprint {} does not match the pinned {}",
                hex::encode(actual),
                hex::encode(pinned)
            )))
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_common_spellings() {
        let hex64 = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        for s in [hex64.as_str(), colons.as_str()] {
            assert_eq!(
                Trust::from_fingerprint_hex(s).unwrap(),
                Trust::Fingerprint([0xab; 32])
            );
        }
        assert!(Trust::from_fingerprint_hex("abc").is_err());
        assert!(Trust::from_fingerprint_hex(&"ab".repeat(31)).is_err());
        assert!(Trust::from_fingerprint_hex(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn missing_ca_file_is_a_config_error() {
        let err = Trust::CaFile("/nonexistent/ca.pem".into())
            .rustls_config()
            .unwrap_err();
        assert!(err.is_fatal(), "{err}");
    }
}
