//! Building answers: JSON bodies, the `Location` of created resources, and the security
//! headers every response carries (problems included).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::http::problem::Problem;

/// The response body type of every answer: a whole body ([`full`]) or, for server-sent
/// events, a stream.
pub type ResBody = UnsyncBoxBody<Bytes, Infallible>;

/// A whole response body.
pub fn full(bytes: impl Into<Bytes>) -> ResBody {
    Full::new(bytes.into()).boxed_unsync()
}

/// The headers of every response: no sniffing, no caching, no framing, no referrers.
static SECURITY_HEADERS: &[(HeaderName, &str)] = &[
    (hyper::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (hyper::header::CACHE_CONTROL, "no-store"),
    (hyper::header::X_FRAME_OPTIONS, "DENY"),
    (
        hyper::header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    ),
    (hyper::header::REFERRER_POLICY, "no-referrer"),
];

/// Adds the security headers every response carries. A `Content-Security-Policy` the handler
/// set (the dashboard's pages) is kept; every other answer gets the strictest one.
pub fn add_security_headers(headers: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
        if *name == hyper::header::CONTENT_SECURITY_POLICY && headers.contains_key(name) {
            continue;
        }
        headers.insert(name.clone(), HeaderValue::from_static(value));
    }
}

/// `value` as an `application/json` answer with `status`; a value that cannot be encoded is
/// a bug (500, the cause logged).
pub(super) fn json<T: Serialize>(
    status: StatusCode,
    value: &T,
) -> Result<Response<ResBody>, Problem> {
    let body = serde_json::to_vec(value)
        .map_err(|e| Problem::internal(format!("cannot encode the response: {e}")))?;
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(res)
}

/// Sets `Location: path` (a created resource).
pub(super) fn set_location(res: &mut Response<ResBody>, path: &str) {
    if let Ok(v) = HeaderValue::from_str(path) {
        res.headers_mut().insert(LOCATION, v);
    }
}
