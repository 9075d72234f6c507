//! Buyer JWTs (HS256 only): a browser may call the API directly with a token whose `sub` is the
//! buyer. The signature is checked in constant time, `exp` is required and checked, `nbf` honoured.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use flashsale_protocol::BuyerId;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Shortest accepted HS256 secret (RFC 7518 §3.2: at least the hash size).
pub const MIN_SECRET_LEN: usize = 32;
/// Longest accepted token, in bytes.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Why a JWT was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of valid JSON.
    #[error("the token is not a well-formed JWT")]
    Malformed,
    /// `alg` is not HS256 (`none` included).
    #[error("the token's algorithm is not HS256")]
    Algorithm,
    /// The signature does not match.
    #[error("the token's signature is invalid")]
    Signature,
    /// `exp` is missing.
    #[error("the token has no exp claim")]
    MissingExpiry,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `sub` is missing or not a valid buyer id.
    #[error("the token's sub is not a valid buyer id")]
    Subject,
}

/// Why a verifier could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the JWT secret must be at least {MIN_SECRET_LEN} bytes")]
pub struct WeakSecret;

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// The claims this API reads (and writes, in [`sign_hs256`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The buyer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Expiry, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not before, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// Verifies HS256 buyer tokens with one shared secret.
#[derive(Clone)]
pub struct JwtVerifier {
    mac: HmacSha256,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtVerifier(HS256)")
    }
}

impl JwtVerifier {
    /// A verifier for `secret` (at least [`MIN_SECRET_LEN`] bytes).
    pub fn new(secret: &[u8]) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(WeakSecret);
        }
        let mac = HmacSha256::new_from_slice(secret).map_err(|_| WeakSecret)?;
        Ok(JwtVerifier { mac })
    }

    /// Whether `token` has the shape of a JWT (three dot-separated parts).
    pub fn looks_like_jwt(token: &str) -> bool {
        token.bytes().filter(|&b| b == b'.').count() == 2
    }

    /// Checks `token` at `now_s` (Unix seconds) and returns its buyer.
    pub fn verify(&self, token: &str, now_s: u64) -> Result<BuyerId, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Header = decode_json(h)?;
        if header.alg != "HS256" {
            return Err(JwtError::Algorithm);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(&token.as_bytes()[..h.len() + 1 + p.len()]);
        mac.verify_slice(&sig).map_err(|_| JwtError::Signature)?;
        let claims: Claims = decode_json(p)?;
        let exp = claims.exp.ok_or(JwtError::MissingExpiry)?;
        if now_s >= exp {
            return Err(JwtError::Expired);
        }
        if claims.nbf.is_some_and(|nbf| now_s < nbf) {
            return Err(JwtError::NotYetValid);
        }
        let sub = claims.sub.ok_or(JwtError::Subject)?;
        BuyerId::new(sub).map_err(|_| JwtError::Subject)
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

/// Signs `claims` with `secret` as an HS256 JWT (for tests and tools that mint buyer tokens).
pub fn sign_hs256(secret: &[u8], claims: &Claims) -> Result<String, WeakSecret> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(WeakSecret);
    }
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(|_| WeakSecret)?);
    let signing_input = format!("{header}.{payload}");
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| WeakSecret)?;
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok(format!("{signing_input}.{sig}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(sub: Option<&str>, exp: Option<u64>) -> Claims {
        Claims {
            sub: sub.map(str::to_owned),
            exp,
            nbf: None,
        }
    }

    #[test]
    fn valid_tokens_name_their_buyer() {
        let v = JwtVerifier::new(SECRET).unwrap();
        let t = sign_hs256(SECRET, &claims(Some("alice"), Some(2_000))).unwrap();
        assert!(JwtVerifier::looks_like_jwt(&t));
        assert_eq!(v.verify(&t, 1_000).unwrap().as_str(), "alice");
    }

    #[test]
    fn bad_tokens_are_refused_with_a_reason() {
        let v = JwtVerifier::new(SECRET).unwrap();
        let t = sign_hs256(SECRET, &claims(Some("alice"), Some(2_000))).unwrap();
        assert_eq!(v.verify(&t, 2_000), Err(JwtError::Expired));
        let other = sign_hs256(
            b"another-secret-another-secret-xx",
            &claims(Some("alice"), Some(2_000)),
        )
        .unwrap();
        assert_eq!(v.verify(&other, 1_000), Err(JwtError::Signature));
        let no_exp = sign_hs256(SECRET, &claims(Some("alice"), None)).unwrap();
        assert_eq!(v.verify(&no_exp, 1_000), Err(JwtError::MissingExpiry));
        let no_sub = sign_hs256(SECRET, &claims(None, Some(2_000))).unwrap();
        assert_eq!(v.verify(&no_sub, 1_000), Err(JwtError::Subject));
        let bad_sub = sign_hs256(SECRET, &claims(Some("a b"), Some(2_000))).unwrap();
        assert_eq!(v.verify(&bad_sub, 1_000), Err(JwtError::Subject));
        let nbf = sign_hs256(
            SECRET,
            &Claims {
                sub: Some("a".into()),
                exp: Some(3_000),
                nbf: Some(1_500),
            },
        )
        .unwrap();
        assert_eq!(v.verify(&nbf, 1_000), Err(JwtError::NotYetValid));
        assert!(v.verify(&nbf, 1_600).is_ok());
        assert_eq!(v.verify("a.b", 0), Err(JwtError::Malformed));
        assert_eq!(v.verify("a.b.c.d", 0), Err(JwtError::Malformed));
        assert_eq!(v.verify("!!.??.##", 0), Err(JwtError::Malformed));
    }

    #[test]
    fn alg_none_and_tampering_are_refused() {
        let v = JwtVerifier::new(SECRET).unwrap();
        let t = sign_hs256(SECRET, &claims(Some("alice"), Some(2_000))).unwrap();
        let mut parts: Vec<&str> = t.split('.').collect();
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        parts[0] = &none;
        assert_eq!(
            v.verify(&format!("{}.{}.", parts[0], parts[1]), 1_000),
            Err(JwtError::Algorithm)
        );
        let evil = URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory","exp":9999}"#);
        let t2: Vec<&str> = t.split('.').collect();
        assert_eq!(
            v.verify(&format!("{}.{}.{}", t2[0], evil, t2[2]), 1_000),
            Err(JwtError::Signature)
        );
    }

    #[test]
    fn weak_secrets_are_refused() {
        assert!(JwtVerifier::new(b"short").is_err());
        assert!(sign_hs256(b"short", &claims(Some("a"), Some(1))).is_err());
    }
}
