//! Who is calling and what they may do: bearer tokens and buyer JWTs become a [`Caller`]; the
//! role checks of each endpoint; and a buyer's view limited to its own reservations and orders.

use std::time::{SystemTime, UNIX_EPOCH};

use flashsale_protocol::BuyerId;
use hyper::header::{HeaderMap, AUTHORIZATION};

use super::App;
use subtle::ConstantTimeEq as _;

use crate::auth::{Role, Tokens};
use crate::http::inventory::Inventory;
use crate::http::jwt::JwtVerifier;
use crate::http::problem::{Problem, ProblemKind};

/// A stable fingerprint of a credential (the first 8 bytes of the token's SHA-256): the scope
/// of that caller's idempotency keys, the same across restarts and token list orderings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CredentialId(pub u64);

impl CredentialId {
    /// The fingerprint of `token`.
    pub fn of(token: &str) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(token.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        CredentialId(u64::from_le_bytes(first))
    }
}

/// The fingerprints of the configured admin and storefront tokens, computed once when the API
/// is built instead of hashing the presented token on every request (ADR 0043).
#[derive(Clone, Default)]
pub(super) struct CredentialIds {
    /// Each token with its fingerprint.
    entries: Vec<(Vec<u8>, CredentialId)>,
}

impl std::fmt::Debug for CredentialIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialIds")
            .field("count", &self.entries.len())
            .finish()
    }
}

impl CredentialIds {
    /// The fingerprints of the admin and storefront tokens of `tokens`.
    pub(super) fn of_tokens(tokens: &Tokens) -> Self {
        let entries = [Role::Admin, Role::Storefront]
            .into_iter()
            .flat_map(|role| tokens.of_role(role))
            .map(|t| {
                let id = CredentialId::of(&String::from_utf8_lossy(t));
                (t.to_vec(), id)
            })
            .collect();
        CredentialIds { entries }
    }

    /// The fingerprint of `token`: looked up (every entry compared in constant time), or
    /// computed if it is not a configured token.
    fn get(&self, token: &str) -> CredentialId {
        let presented = token.as_bytes();
        let mut found = None;
        for (candidate, id) in &self.entries {
            if bool::from(candidate.as_slice().ct_eq(presented)) && found.is_none() {
                found = Some(*id);
            }
        }
        found.unwrap_or_else(|| CredentialId::of(token))
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An admin token.
    Admin(CredentialId),
    /// A storefront token.
    Storefront(CredentialId),
    /// A partner token (read-only stock).
    Partner,
    /// A buyer JWT; the buyer is its `sub`.
    Buyer(BuyerId),
}

/// Seconds since the Unix epoch (0 if the clock is before it): the `now` of JWT checks.
pub(super) fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<E: Inventory> App<E> {
    /// Who presents `Authorization: Bearer …`.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, Problem> {
        let unauth = |d: &str| Problem::new(ProblemKind::Unauthenticated, d);
        let value = headers
            .get(AUTHORIZATION)
            .ok_or_else(|| unauth("missing Authorization: Bearer <token> header"))?;
        let value = value
            .to_str()
            .map_err(|_| unauth("the Authorization header is not ASCII"))?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(unauth("the Authorization header must be `Bearer <token>`")),
        };
        if let Some(role) = self.config.tokens.role_of(token) {
            return Ok(match role {
                Role::Admin => Caller::Admin(self.credential_ids.get(token)),
                Role::Storefront => Caller::Storefront(self.credential_ids.get(token)),
                Role::Partner => Caller::Partner,
            });
        }
        match &self.config.jwt {
            Some(v) if JwtVerifier::looks_like_jwt(token) => v
                .verify(token, now_s())
                .map(Caller::Buyer)
                .map_err(|e| unauth(&format!("invalid buyer token: {e}"))),
            _ => Err(unauth("invalid token")),
        }
    }
}

/// Refuses (403) a caller whose role is not one of `roles`; buyer JWTs have no role here.
pub(super) fn require(caller: &Caller, roles: &[Role]) -> Result<(), Problem> {
    let role = match caller {
        Caller::Admin(_) => Some(Role::Admin),
        Caller::Storefront(_) => Some(Role::Storefront),
        Caller::Partner => Some(Role::Partner),
        Caller::Buyer(_) => None,
    };
    if role.is_some_and(|r| roles.contains(&r)) {
        Ok(())
    } else {
        let names: Vec<&str> = roles
            .iter()
            .map(|r| match r {
                Role::Admin => "admin",
                Role::Storefront => "storefront",
                Role::Partner => "partner",
            })
            .collect();
        let list = names.join(" or ");
        let article = if list.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        Err(Problem::new(
            ProblemKind::Forbidden,
            format!("this endpoint needs {article} {list} token"),
        ))
    }
}

/// Refuses (403) partner tokens, which may only read stock.
pub(super) fn forbid_partner(caller: &Caller) -> Result<(), Problem> {
    if *caller == Caller::Partner {
        Err(Problem::new(
            ProblemKind::Forbidden,
            "partner tokens may only read stock",
        ))
    } else {
        Ok(())
    }
}

/// A buyer token sees only its own reservations and orders; others look unknown (404).
pub(super) fn check_owner(
    caller: &Caller,
    owner: &BuyerId,
    not_found: impl FnOnce() -> String,
) -> Result<(), Problem> {
    match caller {
        Caller::Buyer(b) if b != owner => Err(Problem::not_found(not_found())),
        _ => Ok(()),
    }
}
