//! Standard Webhooks 1.0 signatures: secrets `whsec_<base64>`, and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Prefix of every secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Random bytes in a generated secret (192 bits).
const SECRET_BYTES: usize = 24;

/// A signing secret (the key bytes behind `whsec_…`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A secret string that is not `whsec_<base64>` of at least 16 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is `whsec_` followed by base64 of 16 to 64 bytes")]
pub struct BadSecret;

impl Secret {
    /// A new random secret.
    pub fn generate() -> Secret {
        let mut key = vec![0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Secret(key)
    }

    /// Parses `whsec_<base64>`.
    pub fn parse(s: &str) -> Result<Secret, BadSecret> {
        let b64 = s.strip_prefix(SECRET_PREFIX).ok_or(BadSecret)?;
        let key = B64.decode(b64).map_err(|_| BadSecret)?;
        if !(16..=64).contains(&key.len()) {
            return Err(BadSecret);
        }
        Ok(Secret(key))
    }

    /// The `whsec_<base64>` form given to the endpoint's owner.
    pub fn encoded(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(&self.0))
    }

    /// The `webhook-signature` header value for a message.
    pub fn sign(&self, msg_id: &str, timestamp_s: u64, body: &[u8]) -> String {
        format!("v1,{}", B64.encode(self.mac(msg_id, timestamp_s, body)))
    }

    /// Whether a `webhook-signature` header (space-separated `v1,<sig>` entries) holds a
    /// valid signature of the message (constant-time comparison).
    pub fn verify(&self, msg_id: &str, timestamp_s: u64, body: &[u8], header: &str) -> bool {
        header.split(' ').any(|entry| {
            let Some(sig) = entry.strip_prefix("v1,") else {
                return false;
            };
            let Ok(sig) = B64.decode(sig) else {
                return false;
            };
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
                return false;
            };
            mac.update(format!("{msg_id}.{timestamp_s}.").as_bytes());
            mac.update(body);
            mac.verify_slice(&sig).is_ok()
        })
    }

    fn mac(&self, msg_id: &str, timestamp_s: u64, body: &[u8]) -> Vec<u8> {
        // HMAC accepts keys of any length.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return Vec::new();
        };
        mac.update(format!("{msg_id}.{timestamp_s}.").as_bytes());
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks reference libraries.
    #[test]
    fn matches_the_reference_vector() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap_or_else(|_| unreachable!());
        let body = br#"{"test": 2432232314}"#;
        let sig = secret.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(secret.verify(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &format!("v1,bad {sig}")
        ));
        assert!(!secret.verify("msg_other", 1614265330, body, &sig));
    }

    #[test]
    fn generated_secrets_round_trip_and_bad_ones_are_refused() {
        let s = Secret::generate();
        assert_eq!(Secret::parse(&s.encoded()), Ok(s));
        assert!(Secret::parse("whsec_!!").is_err());
        assert!(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    }
}
