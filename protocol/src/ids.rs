//! Identifiers: SKU ids, buyer ids, reservation and order ids, idempotency keys.

use std::fmt;
use std::sync::Arc;

use rkyv::rancor::{Fallible, Source};
use rkyv::string::{ArchivedString, StringResolver};
use rkyv::with::{ArchiveWith, DeserializeWith, SerializeWith};
use rkyv::{Place, SerializeUnsized};

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The identifier is empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which kind of identifier.
        kind: &'static str,
    },
    /// The identifier is longer than allowed.
    #[error("{kind} is longer than {max} bytes")]
    TooLong {
        /// Which kind of identifier.
        kind: &'static str,
        /// The maximum length in bytes.
        max: usize,
    },
    /// The identifier holds a character outside its alphabet.
    #[error("{kind} holds a character outside {alphabet}")]
    BadChar {
        /// Which kind of identifier.
        kind: &'static str,
        /// The allowed alphabet, for the error message.
        alphabet: &'static str,
    },
    /// An opaque id (reservation, order) did not parse.
    #[error("{kind} is not a valid id")]
    Malformed {
        /// Which kind of identifier.
        kind: &'static str,
    },
}

/// Index of a shard (an engine executor owning a subset of SKUs).
pub type ShardId = u16;

/// Checks a name of the SKU alphabet, `[A-Za-z0-9._-]{1,max_len}` (SKU ids, queue names);
/// `kind` names it in the error.
pub(crate) fn check_name(kind: &'static str, s: &str, max_len: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > max_len {
        return Err(IdError::TooLong { kind, max: max_len });
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(IdError::BadChar {
            kind,
            alphabet: "[A-Za-z0-9._-]",
        });
    }
    Ok(())
}

/// rkyv wrapper that archives a shared string (`Arc<str>`) exactly as rkyv archives a
/// `String` (an [`ArchivedString`]): SKU and buyer ids are shared handles in memory (a clone
/// is a reference count, not an allocation; ADR 0029 addendum) while the log's and the
/// snapshots' bytes stay those of the `String` ids they replaced.
#[derive(Debug, Clone, Copy)]
pub struct SharedAsString;

impl ArchiveWith<Arc<str>> for SharedAsString {
    type Archived = ArchivedString;
    type Resolver = StringResolver;

    fn resolve_with(field: &Arc<str>, resolver: Self::Resolver, out: Place<Self::Archived>) {
        ArchivedString::resolve_from_str(field, resolver, out);
    }
}

impl<S> SerializeWith<Arc<str>, S> for SharedAsString
where
    S: Fallible + ?Sized,
    S::Error: Source,
    str: SerializeUnsized<S>,
{
    fn serialize_with(field: &Arc<str>, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        ArchivedString::serialize_from_str(field, serializer)
    }
}

impl<D: Fallible + ?Sized> DeserializeWith<ArchivedString, Arc<str>, D> for SharedAsString {
    fn deserialize_with(field: &ArchivedString, _: &mut D) -> Result<Arc<str>, D::Error> {
        Ok(Arc::from(field.as_str()))
    }
}

/// A stock-keeping unit id: `[A-Za-z0-9._-]{1,64}`.
#[derive(Clone, PartialOrd, Ord, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct SkuId(#[rkyv(with = SharedAsString)] Arc<str>);

impl SkuId {
    /// Longest SKU id in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates and wraps a SKU id (one allocation; clones share it).
    pub fn new(s: impl AsRef<str>) -> Result<Self, IdError> {
        let s = s.as_ref();
        check_name("sku", s, Self::MAX_LEN)?;
        Ok(SkuId(Arc::from(s)))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A buyer id chosen by the storefront (or the JWT `sub`): 1..=128 printable ASCII bytes.
#[derive(Clone, PartialOrd, Ord, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
#[rkyv(derive(Debug))]
pub struct BuyerId(#[rkyv(with = SharedAsString)] Arc<str>);

impl BuyerId {
    /// Longest buyer id in bytes.
    pub const MAX_LEN: usize = 128;

    /// Validates and wraps a buyer id (one allocation; clones share it).
    pub fn new(s: impl AsRef<str>) -> Result<Self, IdError> {
        let s = s.as_ref();
        const KIND: &str = "buyer";
        if s.is_empty() {
            return Err(IdError::Empty { kind: KIND });
        }
        if s.len() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                kind: KIND,
                max: Self::MAX_LEN,
            });
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdError::BadChar {
                kind: KIND,
                alphabet: "printable ASCII without spaces",
            });
        }
        Ok(BuyerId(Arc::from(s)))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A client-chosen key that makes `POST /v1/reservations` safe to retry: 1..=255 printable bytes.
#[derive(
    Clone, PartialEq, Eq, Hash, PartialOrd, Ord, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest key in bytes.
    pub const MAX_LEN: usize = 255;

    /// Validates and wraps an idempotency key.
    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        const KIND: &str = "Idempotency-Key";
        if s.is_empty() {
            return Err(IdError::Empty { kind: KIND });
        }
        if s.len() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                kind: KIND,
                max: Self::MAX_LEN,
            });
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(IdError::BadChar {
                kind: KIND,
                alphabet: "printable ASCII without spaces",
            });
        }
        Ok(IdempotencyKey(s))
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whose idempotency key it is. Keys are scoped per caller, as payment APIs scope them per
/// account: the same key sent by two callers names two different requests, and no caller can
/// probe or block another caller's keys.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub enum KeyOwner {
    /// A credential (an admin or storefront token), by a stable fingerprint of the token.
    Credential(u64),
    /// A buyer calling with its own token (a buyer JWT's `sub`).
    Buyer(BuyerId),
}

/// An idempotency key together with its owner: the unit the engine deduplicates on.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct ScopedKey {
    /// Who sent the key.
    pub owner: KeyOwner,
    /// The key as the caller sent it.
    pub key: IdempotencyKey,
}

impl ScopedKey {
    /// A key of `owner`.
    pub fn new(owner: KeyOwner, key: IdempotencyKey) -> Self {
        ScopedKey { owner, key }
    }
}

impl fmt::Display for ScopedKey {
    /// Only the caller's own key: the owner is never shown back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key.as_str())
    }
}

macro_rules! opaque_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        ///
        /// Shown to clients as an opaque string (`prefix` + 16 hex digits); the top 16 bits
        /// name the shard that allocated it.
        #[derive(
            Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
        )]
        #[rkyv(derive(Debug))]
        pub struct $name(pub u64);

        impl $name {
            /// Builds an id from the allocating shard and that shard's counter.
            pub fn compose(shard: ShardId, counter: u64) -> Self {
                debug_assert!(counter < (1 << 48), "id counter overflow");
                $name(((shard as u64) << 48) | (counter & ((1 << 48) - 1)))
            }

            /// The shard that allocated this id (and owns it).
            pub fn shard(self) -> ShardId {
                (self.0 >> 48) as ShardId
            }

            /// The allocating shard's counter value.
            pub fn counter(self) -> u64 {
                self.0 & ((1 << 48) - 1)
            }

            /// Parses the opaque string form.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let hex = s.strip_prefix($prefix).ok_or(IdError::Malformed { kind: $kind })?;
                if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(IdError::Malformed { kind: $kind });
                }
                u64::from_str_radix(hex, 16)
                    .map($name)
                    .map_err(|_| IdError::Malformed { kind: $kind })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{:016x}"), self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}

opaque_id!(
    /// A reservation: stock held for a buyer until confirmed, cancelled or expired.
    ReservationId, "res_", "reservation id"
);
opaque_id!(
    /// An order: a confirmed reservation.
    OrderId, "ord_", "order id"
);

/// Equality and hashing of the shared-string ids: by content (as the `String` ids they
/// replaced), with a pointer check first, so comparing two handles of one interned id (the
/// shard's, a command's clone of it) reads no bytes.
macro_rules! shared_id_eq {
    ($($name:ident),*) => {$(
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
            }
        }
        impl Eq for $name {}
        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                // The same as the derived hash of the former `String` field.
                str::hash(&self.0, state);
            }
        }
    )*};
}
shared_id_eq!(SkuId, BuyerId);

/// Lookups by the id's text (`map.get("tee")`): consistent with the content equality and
/// the `str` hash above. Replay uses it to find the shard's own handle of an id read from an
/// archived record instead of allocating a new one (ADR 0036, fourth round).
macro_rules! shared_id_borrow {
    ($($name:ident, $archived:ident);*) => {$(
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl $archived {
            /// The archived id's text, read in place.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }
        }
    )*};
}
shared_id_borrow!(SkuId, ArchivedSkuId; BuyerId, ArchivedBuyerId);

macro_rules! string_id_impls {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                $name::new(s)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(IdVisitor(|s: &str| $name::new(s)))
            }
        }
    )*};
}

/// Builds a string id straight from the deserializer's (borrowed or transient) string, with
/// no intermediate `String`.
struct IdVisitor<T>(fn(&str) -> Result<T, IdError>);

impl<T> serde::de::Visitor<'_> for IdVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // As `String` says, so error details read as before.
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
}

string_id_impls!(SkuId, BuyerId, IdempotencyKey);

macro_rules! opaque_id_serde {
    ($($name:ident),*) => {$(
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    )*};
}
opaque_id_serde!(ReservationId, OrderId);

#[cfg(test)]
mod tests {
    use super::*;

    /// The former shape of the string ids (a `String` field), to check that the shared ones
    /// archive to the same bytes.
    #[derive(rkyv::Archive, rkyv::Serialize)]
    struct StringId(String);

    #[test]
    fn shared_ids_archive_like_the_string_ids_they_replaced() {
        // Short ids are stored inline by rkyv, long ones out of line: both forms.
        for text in ["a", "tee-XL", "exactly8", &"x".repeat(64)] {
            let old = rkyv::to_bytes::<rkyv::rancor::Error>(&StringId(text.to_string()));
            let sku = SkuId::new(text).map(|s| rkyv::to_bytes::<rkyv::rancor::Error>(&s));
            let buyer = BuyerId::new(text).map(|b| rkyv::to_bytes::<rkyv::rancor::Error>(&b));
            let (Ok(old), Ok(Ok(sku)), Ok(Ok(buyer))) = (old, sku, buyer) else {
                panic!("{text:?} did not archive");
            };
            assert_eq!(sku.as_slice(), old.as_slice(), "SKU id {text:?}");
            assert_eq!(buyer.as_slice(), old.as_slice(), "buyer id {text:?}");
            // And the old bytes read back as the shared id.
            let back = rkyv::from_bytes::<SkuId, rkyv::rancor::Error>(&old);
            assert_eq!(back.ok().as_ref().map(SkuId::as_str), Some(text));
        }
    }

    #[test]
    fn shared_ids_compare_and_hash_by_content() {
        use std::hash::BuildHasher;
        let (Ok(a), Ok(b)) = (SkuId::new("same"), SkuId::new(String::from("same"))) else {
            panic!("valid ids refused");
        };
        assert!(!Arc::ptr_eq(&a.0, &b.0), "two allocations");
        assert_eq!(a, b);
        assert_eq!(a, a.clone());
        assert_ne!(Ok(a.clone()), SkuId::new("other"));
        let hasher = std::collections::hash_map::RandomState::new();
        assert_eq!(hasher.hash_one(&a), hasher.hash_one("same".to_string()));
        assert_eq!(hasher.hash_one(&b), hasher.hash_one(a.clone()));
    }

    #[test]
    fn string_ids_deserialize_from_borrowed_and_escaped_json() {
        let plain: Result<BuyerId, _> = serde_json::from_str("\"alice@example.com\"");
        assert_eq!(
            plain.ok().as_ref().map(BuyerId::as_str),
            Some("alice@example.com")
        );
        // An escape forces serde_json to hand over a transient (not borrowed) string.
        let escaped: Result<SkuId, _> = serde_json::from_str("\"tee\\u002dXL\"");
        assert_eq!(escaped.ok().as_ref().map(SkuId::as_str), Some("tee-XL"));
        assert!(serde_json::from_str::<SkuId>("\"a/b\"").is_err());
        assert!(serde_json::from_str::<SkuId>("17").is_err());
    }

    #[test]
    fn sku_ids_follow_the_contract_alphabet() {
        assert!(SkuId::new("tee-XL_2026.red").is_ok());
        assert_eq!(SkuId::new(""), Err(IdError::Empty { kind: "sku" }));
        assert!(matches!(SkuId::new("a/b"), Err(IdError::BadChar { .. })));
        assert!(matches!(
            SkuId::new("x".repeat(65)),
            Err(IdError::TooLong { .. })
        ));
        assert!(SkuId::new("x".repeat(64)).is_ok());
    }

    #[test]
    fn opaque_ids_round_trip_and_name_their_shard() {
        let id = ReservationId::compose(3, 42);
        assert_eq!(id.shard(), 3);
        assert_eq!(id.counter(), 42);
        let s = id.to_string();
        assert_eq!(s, "res_000300000000002a");
        assert_eq!(ReservationId::parse(&s), Ok(id));
        assert!(ReservationId::parse("ord_000300000000002a").is_err());
        assert!(ReservationId::parse("res_xyz").is_err());
        assert!(OrderId::parse("ord_").is_err());
    }

    #[test]
    fn buyer_ids_refuse_control_characters() {
        assert!(BuyerId::new("alice@example.com").is_ok());
        assert!(BuyerId::new("a b").is_err());
        assert!(BuyerId::new("a\nb").is_err());
    }
}
