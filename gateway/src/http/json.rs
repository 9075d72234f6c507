//! Decoding JSON request bodies. Every body is a JSON object, and so is every object nested in
//! it: serde's derive also accepts a struct as an array of its fields in order (the positional
//! form, `["zed",[["az",1]]]`), which the contract does not allow. Errors are 400 `malformed`
//! and say where (`line`, `column`).

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::problem::Problem;

/// Parses a JSON body into `T`, which must be a JSON object; reports where it failed as 400
/// malformed.
pub fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Problem::malformed(
            "the request body is empty; a JSON object is expected",
        ));
    }
    serde_json::from_slice::<Object<T>>(body)
        .map(|o| o.0)
        .map_err(|e| {
            Problem::malformed(format!("invalid JSON body: {e}"))
                .with("line", e.line())
                .with("column", e.column())
        })
}

/// A `T` read only from a JSON object (never from an array of its fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

/// Accepts a map only, then lets `T`'s own `Deserialize` read its fields from it.
struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

/// `#[serde(deserialize_with = "objects")]` for a list of structs: each item must be a JSON
/// object.
pub fn objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let items = Vec::<Object<T>>::deserialize(deserializer)?;
    Ok(items.into_iter().map(|o| o.0).collect())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::http::problem::ProblemKind;

    /// A nested shape like the reservation body.
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        /// A scalar.
        name: String,
        /// Nested objects.
        #[serde(deserialize_with = "objects")]
        items: Vec<Inner>,
    }

    /// A nested object.
    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        /// A number.
        n: i64,
    }

    #[test]
    fn objects_are_read_and_positional_forms_refused() {
        let ok: Outer = parse_json(br#" {"name":"a","items":[{"n":1},{"n":2}]} "#).unwrap();
        assert_eq!(ok.items, [Inner { n: 1 }, Inner { n: 2 }]);
        for body in [
            &br#"["a",[{"n":1}]]"#[..],
            br#"{"name":"a","items":[[1]]}"#,
            br#"["a",[[1]]]"#,
            b"null",
            b"\"a\"",
            b"5",
            b"[]",
        ] {
            let e = parse_json::<Outer>(body).unwrap_err();
            assert_eq!(
                e.kind,
                ProblemKind::Malformed,
                "{}",
                String::from_utf8_lossy(body)
            );
            assert!(
                e.detail.contains("expected a JSON object"),
                "{}: {}",
                String::from_utf8_lossy(body),
                e.detail
            );
        }
    }

    #[test]
    fn errors_inside_objects_keep_their_position() {
        let e =
            parse_json::<Outer>(b"{\"name\":\"a\",\n\"items\":[{\"n\":1,\"m\":2}]}").unwrap_err();
        assert!(e.detail.contains("unknown field `m`"), "{}", e.detail);
        assert_eq!(e.extra["line"], 2);
        let e = parse_json::<Outer>(br#"{"name":"a"}"#).unwrap_err();
        assert!(e.detail.contains("missing field `items`"), "{}", e.detail);
        let e = parse_json::<Outer>(br#"{"name":"a","items":[]} x"#).unwrap_err();
        assert!(e.detail.contains("trailing"), "{}", e.detail);
        let e = parse_json::<Outer>(b"  \n").unwrap_err();
        assert!(e.detail.contains("empty"), "{}", e.detail);
    }
}
