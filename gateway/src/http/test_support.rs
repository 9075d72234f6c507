//! Helpers shared by the HTTP layer's unit tests (compiled for tests only).

#![allow(clippy::unwrap_used)]

use hyper::Response;

use crate::http::app::ResBody;

/// What a client sees of a response: compared whole when two paths must answer alike.
#[derive(Debug, PartialEq)]
pub(crate) struct Seen {
    /// The status code.
    pub(crate) status: u16,
    /// Every header, name and value bytes, in order (hyper writes them in this order).
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub(crate) body: Vec<u8>,
}

/// Status, headers and body of `res`.
pub(crate) fn seen(res: Response<ResBody>) -> Seen {
    let status = res.status().as_u16();
    let headers = res
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    Seen {
        status,
        headers,
        body: body_of(res),
    }
}

/// The whole body of `res`.
pub(crate) fn body_of(res: Response<ResBody>) -> Vec<u8> {
    use http_body_util::BodyExt as _;
    futures::executor::block_on(res.into_body().collect())
        .unwrap()
        .to_bytes()
        .to_vec()
}
