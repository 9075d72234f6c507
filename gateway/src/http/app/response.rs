//! Building answers: JSON bodies, the `Location` of created resources, and the security
//! headers every response carries (problems included).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::http::problem::Problem;

/// The response body type of every answer.
pub type ResBody = Full<Bytes>;

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

/// Adds the security headers every response carries.
pub fn add_security_headers(headers: &mut HeaderMap) {
    for (name, value) in SECURITY_HEADERS {
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
    let mut res = Response::new(Full::new(Bytes::from(body)));
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
