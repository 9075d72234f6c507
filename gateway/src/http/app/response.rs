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

/// Headers an answer's map is sized for up front: `Content-Type`, `Location`, the security
/// headers and a standby's two (`cluster::mark_standby`). A map grown one header at a time
/// reallocates both its tables at the seventh (ADR 0064).
const ANSWER_HEADERS: usize = SECURITY_HEADERS.len() + 4;

/// An empty response with `status` and a header map sized for every header an answer gets.
pub(super) fn sized_response(status: StatusCode, body: ResBody) -> Response<ResBody> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = HeaderMap::with_capacity(ANSWER_HEADERS);
    res
}

/// The largest encoding buffer a thread keeps between answers; a larger one (a long list)
/// is let go after its answer.
const KEPT_ENCODING_BYTES: usize = 64 * 1024;

thread_local! {
    /// This thread's buffer for encoding answers (see [`encoded`]).
    static ENCODING: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The bytes `write` produces, written into this thread's reused buffer and copied once into
/// a body of exactly their size: one allocation per answer, where a growing `Vec` reallocates
/// as it fills and a body with spare capacity costs `Bytes` a second allocation (ADR 0064).
pub(super) fn encoded<E>(write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<Bytes, E> {
    ENCODING.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let written = write(&mut buf).map(|()| Bytes::copy_from_slice(&buf));
            if buf.capacity() > KEPT_ENCODING_BYTES {
                *buf = Vec::new();
            }
            written
        }
        // Not reachable (an encoder does not encode another answer); stay correct.
        Err(_) => {
            let mut buf = Vec::new();
            write(&mut buf).map(|()| Bytes::from(buf))
        }
    })
}

/// `body` (JSON bytes) as an `application/json` answer with `status`.
pub(super) fn json_bytes(status: StatusCode, body: Bytes) -> Response<ResBody> {
    let mut res = sized_response(status, full(body));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

/// `value` as an `application/json` answer with `status`; a value that cannot be encoded is
/// a bug (500, the cause logged).
pub(super) fn json<T: Serialize>(
    status: StatusCode,
    value: &T,
) -> Result<Response<ResBody>, Problem> {
    let body = encoded(|buf| serde_json::to_writer(buf, value))
        .map_err(|e| Problem::internal(format!("cannot encode the response: {e}")))?;
    Ok(json_bytes(status, body))
}

/// Sets `Location: path` (a created resource).
pub(super) fn set_location(res: &mut Response<ResBody>, path: &str) {
    if let Ok(v) = HeaderValue::from_str(path) {
        res.headers_mut().insert(LOCATION, v);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// An encoded body is the writer's bytes, the buffer starts empty for each answer, a
    /// buffer grown past what is kept is let go, and a writer's error is passed on.
    #[test]
    fn encoded_bodies_are_the_writers_bytes() {
        let value = serde_json::json!({"a": [1, 2, 3], "b": "x\"y"});
        let body = encoded(|buf| serde_json::to_writer(buf, &value)).unwrap();
        assert_eq!(&body[..], &serde_json::to_vec(&value).unwrap()[..]);
        let again = encoded(|buf| serde_json::to_writer(buf, &value)).unwrap();
        assert_eq!(body, again);
        let big = "x".repeat(KEPT_ENCODING_BYTES * 2);
        let long = encoded(|buf| serde_json::to_writer(buf, &big)).unwrap();
        assert_eq!(long.len(), big.len() + 2);
        assert_eq!(ENCODING.with(|b| b.borrow().capacity()), 0);
        assert_eq!(encoded(|_| Err::<(), _>("refused")), Err("refused"));
        let small = encoded(|buf| serde_json::to_writer(buf, &value)).unwrap();
        assert_eq!(small, body);
    }
}
