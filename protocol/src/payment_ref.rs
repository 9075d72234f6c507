//! The storefront's payment reference of a confirmed order, as a small string.
//!
//! A confirm carries one reference, which the `Confirmed` event and then the order keep. As a
//! `String` it cost a `malloc` per confirm (and a `free` when the order is forgotten), about
//! 270 instructions of a reserve+confirm pair (ADR 0029, addendum 5). [`PaymentRef`] holds up
//! to [`PaymentRef::INLINE_CAP`] bytes inline, in the 24 bytes a `String` takes, and a longer
//! reference in one boxed `str`. Its rkyv archive is an [`ArchivedString`], byte for byte what
//! the `String` field archived, so logs and snapshots written before read unchanged.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use rkyv::rancor::{Fallible, Source};
use rkyv::string::{ArchivedString, StringResolver};
use rkyv::{Archive, Deserialize, Place, Serialize, SerializeUnsized};

/// A payment reference: any string, stored inline up to [`PaymentRef::INLINE_CAP`] bytes.
/// The engine checks its length (1..=[`MAX_PAYMENT_REF_LEN`](crate::limits::MAX_PAYMENT_REF_LEN));
/// the type itself holds any string, like the `String` it replaced.
#[derive(Clone)]
pub struct PaymentRef(Repr);

/// Where the bytes of a [`PaymentRef`] live.
#[derive(Clone)]
enum Repr {
    /// Up to [`PaymentRef::INLINE_CAP`] bytes; `bytes[..len]` is the UTF-8 text.
    Inline {
        /// Length in bytes.
        len: u8,
        /// The text, then zeros.
        bytes: [u8; PaymentRef::INLINE_CAP],
    },
    /// A longer reference.
    Boxed(Box<str>),
}

impl PaymentRef {
    /// The longest reference held without an allocation, in bytes.
    pub const INLINE_CAP: usize = 22;

    /// The reference as a string slice.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let text = bytes.get(..usize::from(*len)).unwrap_or_default();
                debug_assert!(std::str::from_utf8(text).is_ok());
                // SAFETY: `Repr::Inline` is private to this module and built only by
                // `From<&str>` (and `Default`, length 0), which copies a whole `str` into
                // `bytes[..len]` and never changes it after: the slice is valid UTF-8.
                // (Checking it with `from_utf8` cost ≈ 50 instructions per call, twice per
                // encoded `Confirmed`; ADR 0029 addendum 5.)
                unsafe { std::str::from_utf8_unchecked(text) }
            }
            Repr::Boxed(s) => s,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Inline { len, .. } => usize::from(*len),
            Repr::Boxed(s) => s.len(),
        }
    }

    /// Whether the reference is empty (a reservation not confirmed yet).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the reference is held inline (no allocation).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl Default for PaymentRef {
    fn default() -> Self {
        PaymentRef(Repr::Inline {
            len: 0,
            bytes: [0; PaymentRef::INLINE_CAP],
        })
    }
}

impl From<&str> for PaymentRef {
    fn from(s: &str) -> Self {
        let len = s.len();
        if len <= PaymentRef::INLINE_CAP {
            let mut bytes = [0; PaymentRef::INLINE_CAP];
            bytes[..len].copy_from_slice(s.as_bytes());
            // `len` ≤ INLINE_CAP < 256.
            let len = len as u8;
            PaymentRef(Repr::Inline { len, bytes })
        } else {
            PaymentRef(Repr::Boxed(Box::from(s)))
        }
    }
}

impl From<String> for PaymentRef {
    /// A short string is copied inline (and freed here); a long one keeps its buffer.
    fn from(s: String) -> Self {
        if s.len() <= PaymentRef::INLINE_CAP {
            PaymentRef::from(s.as_str())
        } else {
            PaymentRef(Repr::Boxed(s.into_boxed_str()))
        }
    }
}

impl From<&String> for PaymentRef {
    fn from(s: &String) -> Self {
        PaymentRef::from(s.as_str())
    }
}

impl From<PaymentRef> for String {
    fn from(p: PaymentRef) -> Self {
        match p.0 {
            Repr::Boxed(s) => s.into_string(),
            Repr::Inline { .. } => p.as_str().to_owned(),
        }
    }
}

impl Deref for PaymentRef {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for PaymentRef {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for PaymentRef {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for PaymentRef {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for PaymentRef {}

impl PartialEq<str> for PaymentRef {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for PaymentRef {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for PaymentRef {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<PaymentRef> for String {
    fn eq(&self, other: &PaymentRef) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<PaymentRef> for &str {
    fn eq(&self, other: &PaymentRef) -> bool {
        *self == other.as_str()
    }
}

impl Hash for PaymentRef {
    /// Hashes like the `str` (and so the `String`) it holds.
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for PaymentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for PaymentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Archive for PaymentRef {
    type Archived = ArchivedString;
    type Resolver = StringResolver;

    fn resolve(&self, resolver: Self::Resolver, out: Place<Self::Archived>) {
        ArchivedString::resolve_from_str(self.as_str(), resolver, out);
    }
}

impl<S> Serialize<S> for PaymentRef
where
    S: Fallible + ?Sized,
    S::Error: Source,
    str: SerializeUnsized<S>,
{
    fn serialize(&self, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        ArchivedString::serialize_from_str(self.as_str(), serializer)
    }
}

impl<D: Fallible + ?Sized> Deserialize<PaymentRef, D> for ArchivedString {
    fn deserialize(&self, _: &mut D) -> Result<PaymentRef, D::Error> {
        Ok(PaymentRef::from(self.as_str()))
    }
}

impl serde::Serialize for PaymentRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for PaymentRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Builds a reference from any string serde hands over (borrowed or not).
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = PaymentRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a payment reference string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<PaymentRef, E> {
                Ok(PaymentRef::from(s))
            }
            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<PaymentRef, E> {
                Ok(PaymentRef::from(s))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field shape `Event::Confirmed` had before: a plain `String`.
    #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
    struct OldConfirmed {
        order: u64,
        payment_ref: String,
        at_ms: u64,
    }

    /// The same record with the new type.
    #[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
    struct NewConfirmed {
        order: u64,
        payment_ref: PaymentRef,
        at_ms: u64,
    }

    /// Lengths on both sides of rkyv's inline string (8 bytes) and of ours (22 bytes).
    fn samples() -> Vec<String> {
        let mut all: Vec<String> = [0usize, 1, 3, 7, 8, 9, 21, 22, 23, 64, 256]
            .iter()
            .map(|&n| "p".repeat(n))
            .collect();
        all.push("pi_3MtwBwLkdIwHu7ix28a3tqPa".into());
        all.push("zahlung-ä-€-😀".into());
        all
    }

    #[test]
    fn archives_byte_for_byte_like_the_string_it_replaced() {
        for text in samples() {
            let old = OldConfirmed {
                order: 7,
                payment_ref: text.clone(),
                at_ms: 9,
            };
            let new = NewConfirmed {
                order: 7,
                payment_ref: PaymentRef::from(text.as_str()),
                at_ms: 9,
            };
            let (Ok(old_bytes), Ok(new_bytes)) = (
                rkyv::to_bytes::<rkyv::rancor::Error>(&old),
                rkyv::to_bytes::<rkyv::rancor::Error>(&new),
            ) else {
                panic!("{text:?} did not archive");
            };
            assert_eq!(new_bytes.as_slice(), old_bytes.as_slice(), "{text:?}");
            // Old bytes read as the new type, and new bytes as the old type.
            let as_new = rkyv::from_bytes::<NewConfirmed, rkyv::rancor::Error>(&old_bytes);
            let as_old = rkyv::from_bytes::<OldConfirmed, rkyv::rancor::Error>(&new_bytes);
            let (Ok(as_new), Ok(as_old)) = (as_new, as_old) else {
                panic!("{text:?} did not read back");
            };
            assert_eq!(as_new.payment_ref, text);
            assert_eq!((as_new.order, as_new.at_ms), (7, 9));
            assert_eq!(as_old.payment_ref, text);
            assert_eq!((as_old.order, as_old.at_ms), (7, 9));
        }
    }

    #[test]
    fn short_references_are_inline_and_long_ones_boxed() {
        assert_eq!(
            std::mem::size_of::<PaymentRef>(),
            std::mem::size_of::<String>()
        );
        for text in samples() {
            let p = PaymentRef::from(text.as_str());
            assert_eq!(
                p.is_inline(),
                text.len() <= PaymentRef::INLINE_CAP,
                "{text:?}"
            );
            assert_eq!(p.as_str(), text);
            assert_eq!(p.len(), text.len());
            assert_eq!(p.is_empty(), text.is_empty());
            assert_eq!(PaymentRef::from(text.clone()), p);
            assert_eq!(String::from(p.clone()), text);
            assert_eq!(p.to_string(), text);
            assert_eq!(format!("{p:?}"), format!("{text:?}"));
        }
        assert_eq!(PaymentRef::default(), "");
        assert_ne!(PaymentRef::from("a"), PaymentRef::from("b"));
    }

    #[test]
    fn hashes_like_the_string() {
        use std::hash::BuildHasher;
        let hasher = std::collections::hash_map::RandomState::new();
        for text in samples() {
            let p = PaymentRef::from(text.as_str());
            assert_eq!(hasher.hash_one(&p), hasher.hash_one(&text), "{text:?}");
        }
    }

    #[test]
    fn serde_reads_and_writes_a_json_string() {
        let p: Result<PaymentRef, _> = serde_json::from_str("\"pay-1\"");
        assert_eq!(p.as_ref().ok().map(PaymentRef::as_str), Some("pay-1"));
        // An escape makes serde_json hand over a transient string.
        let escaped: Result<PaymentRef, _> = serde_json::from_str("\"pay\\u002d2\"");
        assert_eq!(escaped.ok().as_ref().map(PaymentRef::as_str), Some("pay-2"));
        assert!(serde_json::from_str::<PaymentRef>("17").is_err());
        let json = serde_json::to_string(&PaymentRef::from("p\"q"));
        assert_eq!(json.ok().as_deref(), Some("\"p\\\"q\""));
    }
}
