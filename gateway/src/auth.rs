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

/// The configured tokens. Comparisons take the same time whether or not a prefix matches.
#[derive(Clone, Default)]
pub struct Tokens {
    entries: Vec<(Vec<u8>, Role)>,
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

    /// Adds a token with its role.
    pub fn add(&mut self, token: impl Into<String>, role: Role) {
        self.entries.push((token.into().into_bytes(), role));
    }

    /// Whether any token of `role` is configured.
    pub fn has(&self, role: Role) -> bool {
        self.entries.iter().any(|(_, r)| *r == role)
    }

    /// The tokens of `role`.
    pub fn of_role(&self, role: Role) -> impl Iterator<Item = &[u8]> {
        self.entries
            .iter()
            .filter(move |(_, r)| *r == role)
            .map(|(t, _)| t.as_slice())
    }

    /// The role of `token`, if it is one of ours. Checks every entry in constant time each.
    pub fn role_of(&self, token: &str) -> Option<Role> {
        let presented = token.as_bytes();
        let mut found = None;
        for (candidate, role) in &self.entries {
            // `ct_eq` on slices of different lengths returns false without leaking where they differ.
            if bool::from(candidate.as_slice().ct_eq(presented)) && found.is_none() {
                found = Some(*role);
            }
        }
        found
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
}
