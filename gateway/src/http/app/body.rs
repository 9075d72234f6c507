//! Reading a request body: whole, within the size limit (413, checked against
//! `Content-Length` before reading) and the time limit (408); a failed read closes the
//! connection, since the rest of the body is left unread.

use std::error::Error as StdError;
use std::future::{poll_fn, Future as _};
use std::pin::pin;
use std::task::Poll;

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{HeaderMap, CONTENT_LENGTH};

use super::App;
use crate::http::inventory::Inventory;
use crate::http::problem::{Problem, ProblemKind};

/// A request body the API can read: hyper's `Incoming`, or any body of bytes in tests.
pub trait RequestBody:
    Body<Data = Bytes, Error: Into<Box<dyn StdError + Send + Sync>>> + Send
{
}

impl<B> RequestBody for B
where
    B: Body<Data = Bytes> + Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
}

impl<E: Inventory> App<E> {
    /// Reads the whole body within the size and time limits.
    pub(super) async fn read_body<B: RequestBody>(
        &self,
        headers: &HeaderMap,
        body: B,
    ) -> Result<Bytes, Problem> {
        let limit = self.config.body_limit_bytes;
        if let Some(len) = headers.get(CONTENT_LENGTH) {
            let len: u64 = len
                .to_str()
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Problem::malformed("Content-Length is not a number"))?;
            if len > limit as u64 {
                return Err(too_large(limit));
            }
        }
        let mut collect = pin!(Limited::new(body, limit).collect());
        // A small body has usually arrived with the head: then the first poll has it and no
        // timer is made (ADR 0043); otherwise the time limit runs from here.
        let first = poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
        let read = match first {
            Poll::Ready(r) => Ok(r),
            Poll::Pending => tokio::time::timeout(self.config.body_timeout, collect).await,
        };
        match read {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
            Ok(Err(e)) => {
                let mut p = Problem::malformed(format!("cannot read the request body: {e}"));
                p.close = true;
                Err(p)
            }
            Err(_) => {
                let mut p = Problem::new(
                    ProblemKind::Timeout,
                    format!(
                        "the request body did not arrive within {} ms",
                        self.config.body_timeout.as_millis()
                    ),
                );
                p.close = true;
                Err(p)
            }
        }
    }
}

/// 413: the body is larger than `limit` bytes; the connection is closed after the answer.
fn too_large(limit: usize) -> Problem {
    let mut p = Problem::new(
        ProblemKind::TooLarge,
        format!("the request body is larger than {limit} bytes"),
    )
    .with("limit_bytes", limit as u64);
    p.close = true;
    p
}
