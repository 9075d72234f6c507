//! Decoding JSON request bodies. Every body is a JSON object, and so is every object nested in
//! it: serde's derive also accepts a struct as an array of its fields in order (the positional
//! form, `["zed",[["az",1]]]`), which the contract does not allow. Integers are numbers with no
//! fractional part however they are written ([`JsonInt`]). Errors are 400 `malformed` and say
//! where (`line`, `column`).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Error as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

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
/// object. The list is any collection (a `Vec`, or a small vector holding a few items inline);
/// items go straight into it, with no intermediate vector. Errors read as a `Vec`'s.
pub fn objects<'de, D, T, C>(deserializer: D) -> Result<C, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
    C: Default + Extend<T>,
{
    deserializer.deserialize_seq(ObjectsVisitor(PhantomData))
}

/// Reads a sequence of JSON objects into a `C` of `T`s.
struct ObjectsVisitor<T, C>(PhantomData<(T, C)>);

impl<'de, T: Deserialize<'de>, C: Default + Extend<T>> Visitor<'de> for ObjectsVisitor<T, C> {
    type Value = C;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // What serde's `Vec` says, so the errors stay the same.
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<C, A::Error> {
        let mut out = C::default();
        while let Some(Object(item)) = seq.next_element::<Object<T>>()? {
            out.extend(std::iter::once(item));
        }
        Ok(out)
    }
}

/// `#[serde(default, borrow, deserialize_with = "optional_str")]` for an optional string
/// that borrows the body when it holds no escape. (serde borrows a `Cow<str>` field, but not
/// one inside an `Option`: that one is always copied.)
pub fn optional_str<'de: 'a, 'a, D>(deserializer: D) -> Result<Option<Cow<'a, str>>, D::Error>
where
    D: Deserializer<'de>,
{
    /// A string, borrowed when it can be.
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Text<'a>>::deserialize(deserializer)?.map(|t| t.0))
}

/// An integer of a JSON body, however the number is written: `1015`, `1015.0`, `1.015e3` and
/// `10150e-1` are the same integer, as JSON Schema's `integer` (a number whose fractional part
/// is zero) says. It is read exactly from the number's text, never through a float, so
/// `9007199254740993.0` is 9007199254740993, and `2.5` or `1e-400` are refused (400) however
/// close to an integer they are. A magnitude beyond `i128::MAX` saturates there: every field's
/// range then refuses it (422), as it refuses any other value above its limit.
///
/// The number's text is borrowed from the body (no allocation), so a `JsonInt` is read only
/// from a deserializer over a whole body in memory ([`parse_json`], `serde_json::from_slice`
/// or `from_str`), never from a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct JsonInt(pub i128);

impl fmt::Display for JsonInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.unsigned_abs() == i128::MAX.unsigned_abs() {
            let sign = if self.0 < 0 { "-" } else { "" };
            write!(f, "{sign}1.7e38 or more")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

impl<'de> Deserialize<'de> for JsonInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        integer_of(raw.get()).map(JsonInt).map_err(D::Error::custom)
    }
}

/// Longest excerpt of a refused number quoted in an error.
const QUOTE_MAX_CHARS: usize = 40;

/// The integer value of the JSON value `text` (exact, saturating beyond `i128`), or why it is
/// not one.
fn integer_of(text: &str) -> Result<i128, String> {
    let text = text.trim();
    let not_integer = || {
        let mut quoted: String = text.chars().take(QUOTE_MAX_CHARS).collect();
        if quoted.len() < text.len() {
            quoted.push('…');
        }
        format!("invalid value: {quoted}, expected an integer (a number with no fractional part)")
    };
    let kind = match text.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => None,
        Some(b'"') => Some("a string"),
        Some(b'{') => Some("an object"),
        Some(b'[') => Some("an array"),
        Some(b't' | b'f') => Some("a boolean"),
        Some(b'n') => Some("null"),
        _ => Some("not a JSON value"),
    };
    if let Some(kind) = kind {
        return Err(format!("invalid type: {kind}, expected an integer"));
    }
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (unsigned, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
        return Err(not_integer());
    }
    let frac = frac.unwrap_or("");
    // The exponent, bounded: beyond ±10^6 the outcome no longer depends on it (the body limit
    // bounds the digits to far fewer), so it saturates there.
    const EXP_BOUND: i64 = 1_000_000;
    let exp = match exponent {
        None => 0,
        Some(e) => {
            let (sign, digits) = match e.as_bytes().first() {
                Some(b'-') => (-1, &e[1..]),
                Some(b'+') => (1, &e[1..]),
                _ => (1, e),
            };
            if !all_digits(digits) {
                return Err(not_integer());
            }
            let magnitude = digits.bytes().fold(0i64, |acc, b| {
                (acc * 10 + i64::from(b - b'0')).min(EXP_BOUND)
            });
            sign * magnitude
        }
    };
    // value = digits × 10^(exp − frac digits); strip zeros so the scale is exact. The digits
    // are the integer part's then the fraction's, read in place (no joined copy).
    let digits = || int.bytes().chain(frac.bytes());
    let all = int.len() + frac.len();
    let leading = digits().take_while(|b| *b == b'0').count();
    if leading == all {
        return Ok(0);
    }
    let trailing = digits().rev().take_while(|b| *b == b'0').count();
    let stripped = all - leading - trailing;
    let scale = exp - frac.len() as i64 + trailing as i64;
    if scale < 0 {
        return Err(not_integer());
    }
    let saturated = if negative { -i128::MAX } else { i128::MAX };
    // i128::MAX has 39 digits: anything longer saturates without computing.
    if stripped as i64 + scale > 39 {
        return Ok(saturated);
    }
    let mut value: i128 = 0;
    for b in digits()
        .skip(leading)
        .take(stripped)
        .chain(std::iter::repeat_n(b'0', scale as usize))
    {
        match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
        {
            Some(v) => value = v,
            None => return Ok(saturated),
        }
    }
    Ok(if negative { -value } else { value })
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
    fn integers_are_read_exactly_however_written() {
        for (text, want) in [
            ("0", 0),
            ("-0", 0),
            ("0.0", 0),
            ("0e5", 0),
            ("-0.000e-9", 0),
            ("1015", 1015),
            ("1015.0", 1015),
            ("1015.000", 1015),
            ("1.015e3", 1015),
            ("1.015E+3", 1015),
            ("10150e-1", 1015),
            ("0.1e1", 1),
            ("-12.0", -12),
            ("1E+2", 100),
            ("9007199254740993", 9_007_199_254_740_993),
            ("9007199254740993.0", 9_007_199_254_740_993),
            ("1e38", 10i128.pow(38)),
            ("170141183460469231731687303715884105727", i128::MAX),
            ("170141183460469231731687303715884105728", i128::MAX),
            ("1e39", i128::MAX),
            ("1e400", i128::MAX),
            ("1e99999999999999999999999", i128::MAX),
            ("-1e400", -i128::MAX),
        ] {
            assert_eq!(integer_of(text), Ok(want), "{text}");
        }
        for text in ["1015.5", "0.5", "1e-1", "1e-400", "9007199254740992.5"] {
            let e = integer_of(text).unwrap_err();
            assert!(e.starts_with("invalid value: "), "{text}: {e}");
        }
        // Not JSON numbers (serde_json refuses them before): refused all the same.
        for text in ["1.", ".5", "1e", "1e+", "-", "1x", "1.5.5", ""] {
            assert!(integer_of(text).is_err(), "{text}");
        }
        let long = format!("0.{}1", "0".repeat(100));
        assert!(integer_of(&long).unwrap_err().contains('…'));
        for (text, kind) in [
            ("\"3\"", "a string"),
            ("{}", "an object"),
            ("[1]", "an array"),
            ("true", "a boolean"),
            ("null", "null"),
        ] {
            let e = integer_of(text).unwrap_err();
            assert_eq!(e, format!("invalid type: {kind}, expected an integer"));
        }
    }

    #[test]
    fn integer_errors_are_malformed_and_say_where() {
        #[derive(Debug, Deserialize)]
        struct N {
            #[allow(dead_code)]
            n: JsonInt,
            o: Option<JsonInt>,
        }
        let ok: N = parse_json(br#"{"n": 2.0e0, "o": null}"#).unwrap();
        assert_eq!(ok.o, None);
        let ok: N = parse_json(br#"{"n": 1, "o": 7.0}"#).unwrap();
        assert_eq!(ok.o, Some(JsonInt(7)));
        let e = parse_json::<N>(b"{\"n\": 1,\n \"o\": 2.5}").unwrap_err();
        assert_eq!(e.kind, ProblemKind::Malformed);
        assert!(e.detail.contains("expected an integer"), "{}", e.detail);
        assert_eq!(e.extra["line"], 2);
        assert_eq!(JsonInt(-5).to_string(), "-5");
        assert_eq!(JsonInt(i128::MAX).to_string(), "1.7e38 or more");
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
