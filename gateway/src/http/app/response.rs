//! Building answers: JSON bodies, the `Location` of created resources, and the security
//! headers every response carries (problems included).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::http::problem::Problem;

/// The response body type of every answer: a whole body ([`full`]), kept inline (no box,
/// ADR 0061: every answer but a stream is whole), or, for server-sent events, a stream.
#[derive(Debug)]
pub enum ResBody {
    /// The whole body at once (or none: the default).
    Whole(Full<Bytes>),
    /// A body sent frame by frame as it is produced (server-sent events).
    Stream(UnsyncBoxBody<Bytes, Infallible>),
}

impl ResBody {
    /// A body streamed from `body`.
    pub fn stream<B>(body: B) -> Self
    where
        B: Body<Data = Bytes, Error = Infallible> + Send + 'static,
    {
        ResBody::Stream(body.boxed_unsync())
    }
}

impl Default for ResBody {
    /// An empty body.
    fn default() -> Self {
        ResBody::Whole(Full::default())
    }
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            ResBody::Whole(b) => Pin::new(b).poll_frame(cx),
            ResBody::Stream(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResBody::Whole(b) => b.is_end_stream(),
            ResBody::Stream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResBody::Whole(b) => b.size_hint(),
            ResBody::Stream(b) => b.size_hint(),
        }
    }
}

/// A whole response body.
pub fn full(bytes: impl Into<Bytes>) -> ResBody {
    ResBody::Whole(Full::new(bytes.into()))
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
