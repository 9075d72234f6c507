//! Who is calling and what they may do: bearer tokens and buyer JWTs become a [`Caller`]; the
//! role checks of each endpoint; and a buyer's view limited to its own reservations and orders.

use std::time::{SystemTime, UNIX_EPOCH};

use flashsale_protocol::BuyerId;
use hyper::header::{HeaderMap, AUTHORIZATION};

use super::App;

use crate::auth::Role;
use crate::http::inventory::Inventory;
use crate::http::jwt::JwtVerifier;
use crate::http::problem::{Problem, ProblemKind};

pub use crate::auth::CredentialId;

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
        if let Some(c) = self.config.tokens.lookup(token) {
            return Ok(match c.role {
                Role::Admin => Caller::Admin(c.id),
                Role::Storefront => Caller::Storefront(c.id),
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
