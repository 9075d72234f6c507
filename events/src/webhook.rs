//! One webhook request per Standard Webhooks 1.0: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature` headers over the JSON body. A 2xx answer is success; anything else,
//! redirects included (never followed), is a failure to retry.

use std::time::Duration;

use crate::signature::Secret;

/// How long one request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered 2xx.
    Delivered {
        /// Its status.
        status: u16,
    },
    /// A non-2xx answer, or no answer.
    Failed {
        /// The status, if one came.
        status: Option<u16>,
        /// What went wrong.
        error: String,
    },
}

/// The HTTP client shared by all endpoints: no redirects, bounded time, keep-alive.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(256)
        .user_agent(concat!("flashsale-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends `body` (event `id`) to `url`, signed with `secret` at `timestamp_s`. The body is
/// shared, not copied (the same bytes serve every retry).
pub async fn send(
    http: &reqwest::Client,
    url: &str,
    secret: &Secret,
    id: &str,
    timestamp_s: u64,
    body: &bytes::Bytes,
) -> Attempt {
    let sig = secret.sign(id, timestamp_s, body);
    let res = http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp_s.to_string())
        .header("webhook-signature", sig)
        .body(body.clone())
        .send()
        .await;
    match res {
        Ok(r) => {
            let status = r.status().as_u16();
            if r.status().is_success() {
                Attempt::Delivered { status }
            } else if r.status().is_redirection() {
                Attempt::Failed {
                    status: Some(status),
                    error: "redirect (not followed)".into(),
                }
            } else {
                Attempt::Failed {
                    status: Some(status),
                    error: format!("HTTP {status}"),
                }
            }
        }
        Err(e) => Attempt::Failed {
            status: None,
            error: if e.is_timeout() {
                "timed out".into()
            } else if e.is_connect() {
                "connection failed".into()
            } else {
                "request failed".into()
            },
        },
    }
}
