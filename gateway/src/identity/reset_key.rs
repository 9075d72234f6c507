//! The QUIC stateless-reset key: HMAC-SHA256 under a stored secret, so a restarted server
//! derives the same reset tokens as before and can tell the clients of its previous run that
//! their connections are gone (RFC 9000 §10.3), instead of leaving them to time out. The same
//! secret keys the connection-id generator: a restarted endpoint must recognise the ids it
//! issued before as its own, or it drops their packets without a reset.

use hmac::{Hmac, Mac as _};
use quinn::crypto::{CryptoError, HmacKey};
use sha2::Sha256;

/// Bytes of a stateless-reset secret.
pub const RESET_SECRET_LEN: usize = 32;

/// A [`HmacKey`] for [`quinn::EndpointConfig::reset_key`] made from a stored secret.
#[derive(Clone)]
pub struct ResetKey {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for ResetKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetKey(..)")
    }
}

impl ResetKey {
    /// The key for `secret`.
    pub fn new(secret: &[u8; RESET_SECRET_LEN]) -> ResetKey {
        // HMAC accepts keys of any length; 32 bytes cannot be refused.
        let mac = match Hmac::<Sha256>::new_from_slice(secret) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
        };
        ResetKey { mac }
    }

    /// The key of quinn's hashed connection-id generator, derived from the same secret (so the
    /// ids of a previous run validate after a restart).
    pub fn cid_key(&self) -> u64 {
        let mut tag = [0u8; 32];
        self.sign(b"flashsale connection-id key", &mut tag);
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag[..8]);
        u64::from_le_bytes(first)
    }
}

impl HmacKey for ResetKey {
    fn sign(&self, data: &[u8], signature_out: &mut [u8]) {
        let mut mac = self.mac.clone();
        mac.update(data);
        let tag = mac.finalize().into_bytes();
        let n = signature_out.len().min(tag.len());
        signature_out[..n].copy_from_slice(&tag[..n]);
    }

    fn signature_len(&self) -> usize {
        32
    }

    fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        let mut mac = self.mac.clone();
        mac.update(data);
        mac.verify_slice(signature).map_err(|_| CryptoError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_secret_same_signature_and_verification() {
        let a = ResetKey::new(&[7; RESET_SECRET_LEN]);
        let b = ResetKey::new(&[7; RESET_SECRET_LEN]);
        let c = ResetKey::new(&[8; RESET_SECRET_LEN]);
        let (mut sa, mut sb, mut sc) = ([0u8; 32], [0u8; 32], [0u8; 32]);
        a.sign(b"connection id", &mut sa);
        b.sign(b"connection id", &mut sb);
        c.sign(b"connection id", &mut sc);
        assert_eq!(sa, sb, "a restarted server derives the same tokens");
        assert_ne!(sa, sc);
        assert!(a.verify(b"connection id", &sb).is_ok());
        assert!(a.verify(b"connection id", &sc).is_err());
        assert_eq!(a.signature_len(), 32);
        assert_eq!(a.cid_key(), b.cid_key());
        assert_ne!(a.cid_key(), c.cid_key());
    }
}
