//! Passes: `base64url(claims) "." base64url(HMAC-SHA256(key, claims))`, where the claims are
//! the queue, the buyer, the ticket and the expiry (Unix ms), one per line. Only the MAC is
//! checked here; whether the ticket's pass is still usable (spent, expired, in use) is the
//! room's business.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use flashsale_protocol::queue::QueueId;
use flashsale_protocol::BuyerId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::limits::MAX_PASS_LEN;

type HmacSha256 = Hmac<Sha256>;

/// Why a reservation's pass was refused. Each maps to `403 pass-invalid` except `Required`
/// (`403 pass-required`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PassError {
    /// A line names a queued SKU and no pass came with it.
    #[error("a reservation of a queued SKU needs a pass of queue {queue}")]
    Required {
        /// The queue whose pass is needed.
        queue: QueueId,
    },
    /// The pass is not one this server signed (bad MAC, bad encoding, unknown ticket).
    #[error("the pass is forged or malformed")]
    Forged,
    /// The pass's lifetime has passed (or its ticket expired).
    #[error("the pass expired")]
    Expired,
    /// The pass was spent by a confirmed reservation.
    #[error("the pass was spent by a confirmed reservation")]
    Spent,
    /// The pass belongs to another buyer.
    #[error("the pass belongs to another buyer")]
    OtherBuyer,
    /// The pass is of another queue than the reservation's queued SKUs.
    #[error("the pass is of queue {pass_queue}, the reservation needs queue {queue}")]
    OtherQueue {
        /// The queue of the pass.
        pass_queue: QueueId,
        /// The queue the reservation's SKUs belong to.
        queue: QueueId,
    },
    /// The reservation names SKUs of two queues: one pass cannot cover both.
    #[error("the reservation names SKUs of queues {first} and {second}; reserve them apart")]
    SeveralQueues {
        /// One queue.
        first: QueueId,
        /// Another queue.
        second: QueueId,
    },
    /// The pass already holds a reservation (one held reservation per pass at a time).
    #[error("the pass already holds a reservation; confirm or cancel it first")]
    InUse,
    /// After a restart or a takeover the pass is idle in the log but may hold a reservation
    /// the room's journal lost (ADR 0034): it is refused until the ticker has checked it
    /// against the engine, within a few ticks. Transient: retry shortly.
    #[error("the pass is being checked against the reservations after a restart; retry shortly")]
    Checking,
}

/// What a pass says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassClaims {
    /// The queue.
    pub queue: QueueId,
    /// The buyer it was issued to.
    pub buyer: BuyerId,
    /// The ticket it was issued for.
    pub ticket: u64,
    /// Its expiry, Unix ms.
    pub expires_at_ms: u64,
}

/// The HMAC-SHA256 key passes are signed with.
#[derive(Clone)]
pub struct PassKey([u8; 32]);

impl std::fmt::Debug for PassKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PassKey(..)")
    }
}

impl PassKey {
    /// A key from 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        PassKey(bytes)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length; 32 bytes cannot be refused.
        match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts a 32-byte key"),
        }
    }

    /// The pass for `claims`.
    pub fn sign(&self, claims: &PassClaims) -> String {
        let payload = format!(
            "{}\n{}\n{}\n{}",
            claims.queue, claims.buyer, claims.ticket, claims.expires_at_ms
        );
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The claims of a pass this key signed (MAC compared in constant time), else `Forged`.
    pub fn verify(&self, pass: &str) -> Result<PassClaims, PassError> {
        if pass.len() > MAX_PASS_LEN {
            return Err(PassError::Forged);
        }
        let (body, tag) = pass.split_once('.').ok_or(PassError::Forged)?;
        let payload = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| PassError::Forged)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| PassError::Forged)?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&tag).map_err(|_| PassError::Forged)?;
        // Signed by us: the layout is ours, but parse defensively all the same.
        let text = std::str::from_utf8(&payload).map_err(|_| PassError::Forged)?;
        let mut parts = text.split('\n');
        let (Some(queue), Some(buyer), Some(ticket), Some(expires), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(PassError::Forged);
        };
        Ok(PassClaims {
            queue: QueueId::new(queue).map_err(|_| PassError::Forged)?,
            buyer: BuyerId::new(buyer).map_err(|_| PassError::Forged)?,
            ticket: ticket.parse().map_err(|_| PassError::Forged)?,
            expires_at_ms: expires.parse().map_err(|_| PassError::Forged)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn claims() -> PassClaims {
        PassClaims {
            queue: QueueId::new("q").unwrap(),
            buyer: BuyerId::new("alice").unwrap(),
            ticket: 7,
            expires_at_ms: 1_000,
        }
    }

    #[test]
    fn signs_and_verifies() {
        let key = PassKey::new([7; 32]);
        let pass = key.sign(&claims());
        assert_eq!(key.verify(&pass), Ok(claims()));
    }

    #[test]
    fn any_change_or_other_key_is_forged() {
        let key = PassKey::new([7; 32]);
        let pass = key.sign(&claims());
        assert_eq!(PassKey::new([8; 32]).verify(&pass), Err(PassError::Forged));
        let mut other = claims();
        other.buyer = BuyerId::new("mallory").unwrap();
        let (_, tag) = pass.split_once('.').unwrap();
        let (body, _) = key
            .sign(&other)
            .split_once('.')
            .map(|(b, t)| (b.to_string(), t.to_string()))
            .unwrap();
        assert_eq!(key.verify(&format!("{body}.{tag}")), Err(PassError::Forged));
        for bad in ["", ".", "abc", "a.b.c", &"x".repeat(600)] {
            assert_eq!(key.verify(bad), Err(PassError::Forged), "{bad:?}");
        }
        let mut bytes = pass.into_bytes();
        for i in 0..bytes.len() {
            let orig = bytes[i];
            bytes[i] = if orig == b'A' { b'B' } else { b'A' };
            let s = String::from_utf8(bytes.clone()).unwrap();
            assert!(
                key.verify(&s).is_err() || s.as_bytes()[i] == orig,
                "flip at {i}"
            );
            bytes[i] = orig;
        }
    }
}
