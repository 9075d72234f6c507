//! TLS material for the stream server: certificate files, or a self-signed certificate made at
//! start, and the SHA-256 fingerprint clients pin.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use super::StreamError;

/// A certificate chain and its key, ready for rustls.
#[derive(Debug)]
pub struct TlsIdentity {
    /// End-entity certificate first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: PrivateKeyDer<'static>,
    /// Whether the certificate was generated at start (self-signed).
    pub self_signed: bool,
}

impl TlsIdentity {
    /// Loads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<TlsIdentity, StreamError> {
        let bad_cert = |e: String| StreamError::Certificate {
            path: cert.display().to_string(),
            reason: e,
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| bad_cert(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad_cert(e.to_string()))?;
        if chain.is_empty() {
            return Err(bad_cert("no CERTIFICATE block found".into()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| StreamError::Certificate {
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(TlsIdentity {
            chain,
            key,
            self_signed: false,
        })
    }

    /// Generates a self-signed certificate for `names` (DNS names or IP addresses).
    pub fn self_signed(names: Vec<String>) -> Result<TlsIdentity, StreamError> {
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| StreamError::Tls(format!("cannot generate a certificate: {e}")))?;
        let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
        Ok(TlsIdentity {
            chain: vec![certified.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(key),
            self_signed: true,
        })
    }

    /// SHA-256 of the end-entity certificate (DER), lowercase hex: what clients pin.
    pub fn fingerprint(&self) -> String {
        self.chain
            .first()
            .map(|c| fingerprint_of(c))
            .unwrap_or_default()
    }

    /// The end-entity certificate as PEM (to hand to clients as a `--ca` file).
    pub fn certificate_pem(&self) -> String {
        use base64::Engine as _;
        let mut out = String::new();
        for cert in &self.chain {
            let b64 = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
            out.push_str("-----BEGIN CERTIFICATE-----\n");
            for line in b64.as_bytes().chunks(64) {
                out.push_str(&String::from_utf8_lossy(line));
                out.push('\n');
            }
            out.push_str("-----END CERTIFICATE-----\n");
        }
        out
    }

    /// A rustls server configuration (TLS 1.3, ALPN `flashsale/1`) for quinn.
    pub fn server_crypto(&self) -> Result<rustls::ServerConfig, StreamError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| StreamError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| StreamError::Tls(format!("certificate and key do not match: {e}")))?;
        config.alpn_protocols = vec![flashsale_protocol::stream::ALPN.to_vec()];
        Ok(config)
    }
}

/// SHA-256 of a DER certificate, lowercase hex.
pub fn fingerprint_of(cert: &CertificateDer<'_>) -> String {
    hex::encode(Sha256::digest(cert.as_ref()))
}
