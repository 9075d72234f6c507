//! Credentials shared by the HTTP API and the stock stream: bearer tokens and their roles.

use subtle::ConstantTimeEq;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// SKU management, and everything a storefront may do.
    Admin,
    /// A trusted storefront acting for its buyers.
    Storefront,
    /// A partner system: may only read stock (the stream, `GET /v1/skus`).
    Partner,
}

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

/// What a configured token is: its role and its fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credential {
    /// What it allows.
    pub role: Role,
    /// Its fingerprint, computed once when the token was added (ADR 0043).
    pub id: CredentialId,
}

/// One configured token.
#[derive(Clone)]
struct Entry {
    /// The token's bytes.
    token: Vec<u8>,
    /// Its role and fingerprint.
    credential: Credential,
}

/// The configured tokens. Comparisons take the same time whether or not a prefix matches.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("count", &self.entries.len())
            .finish()
    }
}

impl Tokens {
    /// No tokens.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a token with its role; its fingerprint is computed here, once.
    pub fn add(&mut self, token: impl Into<String>, role: Role) {
        let token = token.into();
        let id = CredentialId::of(&token);
        self.entries.push(Entry {
            token: token.into_bytes(),
            credential: Credential { role, id },
        });
    }

    /// Whether any token of `role` is configured.
    pub fn has(&self, role: Role) -> bool {
        self.entries.iter().any(|e| e.credential.role == role)
    }

    /// The tokens of `role`.
    pub fn of_role(&self, role: Role) -> impl Iterator<Item = &[u8]> {
        self.entries
            .iter()
            .filter(move |e| e.credential.role == role)
            .map(|e| e.token.as_slice())
    }

    /// The role and fingerprint of `token`, if it is one of ours. Compares every entry, each
    /// in constant time: one scan per request, whatever matches.
    pub fn lookup(&self, token: &str) -> Option<Credential> {
        let presented = token.as_bytes();
        let mut found = None;
        for e in &self.entries {
            // `ct_eq` on slices of different lengths returns false without leaking where they differ.
            if bool::from(e.token.as_slice().ct_eq(presented)) && found.is_none() {
                found = Some(e.credential);
            }
        }
        found
    }

    /// The role of `token`, if it is one of ours (see [`Tokens::lookup`]).
    pub fn role_of(&self, token: &str) -> Option<Role> {
        self.lookup(token).map(|c| c.role)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_found_by_exact_token() {
        let mut t = Tokens::new();
        t.add("adm", Role::Admin);
        t.add("shop", Role::Storefront);
        assert_eq!(t.role_of("adm"), Some(Role::Admin));
        assert_eq!(t.role_of("shop"), Some(Role::Storefront));
        assert_eq!(t.role_of("sho"), None);
        assert_eq!(t.role_of(""), None);
        assert!(t.has(Role::Admin));
        assert!(!t.has(Role::Partner));
    }

    #[test]
    fn a_lookup_gives_the_fingerprint_computed_at_add() {
        let mut t = Tokens::new();
        t.add("adm", Role::Admin);
        t.add("shop", Role::Storefront);
        let c = t.lookup("shop").unwrap();
        assert_eq!(c.role, Role::Storefront);
        assert_eq!(c.id, CredentialId::of("shop"));
        assert_ne!(c.id, CredentialId::of("adm"));
        assert_eq!(t.lookup("shopx"), None);
    }
}
