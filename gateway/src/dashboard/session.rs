//! The dashboard's session cookie: a browser cannot put a Bearer header on a page load or an
//! `EventSource`, so `POST /dashboard/session` exchanges the admin token for a cookie
//! (`HttpOnly`, `SameSite=Strict`, `Path=/dashboard`, 8 h) that authorises the dashboard's
//! pages and event stream only — never the admin API.
//!
//! The cookie is stateless: `<expiry unix s>.<hex HMAC-SHA256(key, "v1." + expiry)>`. The key
//! is derived from the admin tokens in force, so sessions survive a restart with the same
//! tokens, and changing the admin tokens ends every session. Sans-IO: the caller passes `now`.

use hmac::digest::generic_array::GenericArray;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Name of the session cookie.
pub const COOKIE_NAME: &str = "flashsale_dashboard";
/// How long a session lasts, in seconds.
pub const SESSION_TTL_S: u64 = 8 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// The key that signs and checks session cookies: 32 secret bytes, zero-padded to SHA-256's
/// block size (HMAC pads shorter keys the same way), so that building the MAC cannot fail.
#[derive(Clone)]
pub struct SessionKey([u8; 64]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// The key of the admin tokens `admin_tokens` (order does not matter). Without any admin
    /// token, a random key: no session can be issued anyway.
    pub fn from_admin_tokens<'a>(admin_tokens: impl Iterator<Item = &'a [u8]>) -> Self {
        let mut tokens: Vec<&[u8]> = admin_tokens.collect();
        let mut key = [0u8; 64];
        if tokens.is_empty() {
            key[..32].copy_from_slice(&rand::random::<[u8; 32]>());
            return SessionKey(key);
        }
        tokens.sort_unstable();
        let mut h = Sha256::new();
        h.update(b"flashsale dashboard session key v1\0");
        for t in tokens {
            h.update((t.len() as u64).to_le_bytes());
            h.update(t);
        }
        key[..32].copy_from_slice(&h.finalize());
        SessionKey(key)
    }

    /// The MAC of a session expiring at `exp_s`.
    fn mac(&self, exp_s: u64) -> HmacSha256 {
        let mut m = <HmacSha256 as KeyInit>::new(GenericArray::from_slice(&self.0));
        m.update(format!("v1.{exp_s}").as_bytes());
        m
    }

    /// A cookie value for a session starting at `now_s`.
    pub fn issue(&self, now_s: u64) -> String {
        let exp = now_s.saturating_add(SESSION_TTL_S);
        format!(
            "{exp}.{}",
            hex::encode(self.mac(exp).finalize().into_bytes())
        )
    }

    /// Whether `value` is a cookie this key issued that has not expired at `now_s`.
    pub fn verify(&self, value: &str, now_s: u64) -> bool {
        let Some((exp, mac)) = value.split_once('.') else {
            return false;
        };
        let (Ok(exp), Ok(mac)) = (exp.parse::<u64>(), hex::decode(mac)) else {
            return false;
        };
        // Expired, or further ahead than any session this key issues (a clock moved back).
        if exp <= now_s || exp > now_s.saturating_add(SESSION_TTL_S + 300) {
            return false;
        }
        self.mac(exp).verify_slice(&mac).is_ok()
    }
}

/// The value of the session cookie among the `Cookie` header values, if present.
pub fn cookie_value<'a>(cookie_headers: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    cookie_headers
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The `Set-Cookie` value that starts a session with `value`.
pub fn set_cookie(value: &str) -> String {
    format!("{COOKIE_NAME}={value}; Path=/dashboard; Max-Age={SESSION_TTL_S}; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that ends the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE_NAME}=; Path=/dashboard; Max-Age=0; HttpOnly; SameSite=Strict")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tokens: &[&str]) -> SessionKey {
        SessionKey::from_admin_tokens(tokens.iter().map(|t| t.as_bytes()))
    }

    #[test]
    fn a_session_is_valid_until_it_expires_and_only_for_its_key() {
        let k = key(&["adm-1", "adm-2"]);
        let now = 1_800_000_000;
        let c = k.issue(now);
        assert!(k.verify(&c, now));
        assert!(k.verify(&c, now + SESSION_TTL_S - 1));
        assert!(!k.verify(&c, now + SESSION_TTL_S));
        // Same tokens in another order: the same key (a restart keeps sessions).
        assert!(key(&["adm-2", "adm-1"]).verify(&c, now));
        // Other tokens: another key.
        assert!(!key(&["adm-1"]).verify(&c, now));
        // Tampering with the expiry or the MAC is refused.
        let (exp, mac) = c.split_once('.').unwrap();
        let later = format!("{}.{mac}", exp.parse::<u64>().unwrap() + 60);
        assert!(!k.verify(&later, now));
        assert!(!k.verify(&format!("{exp}.{}", "0".repeat(64)), now));
        for bad in ["", ".", "x.y", "123", "123.zz", &format!("{exp}.")] {
            assert!(!k.verify(bad, now), "{bad:?}");
        }
        // An expiry far in the future is refused even with a valid MAC.
        let far = k.issue(now + 10 * SESSION_TTL_S);
        assert!(!k.verify(&far, now));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let hs = ["a=1; flashsale_dashboard=123.abc; b=2", "c=3"];
        assert_eq!(cookie_value(hs.into_iter()), Some("123.abc"));
        assert_eq!(cookie_value(["a=1", "b=2"].into_iter()), None);
        assert!(set_cookie("v").contains("HttpOnly; SameSite=Strict"));
        assert!(clear_cookie().contains("Max-Age=0"));
    }
}
