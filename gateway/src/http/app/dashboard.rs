//! The dashboard's endpoints: the page (or the sign-in page without a session), its embedded
//! assets, signing in and out, and the event stream. Signing in exchanges the admin token for
//! a session cookie that authorises these endpoints only.

use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE, COOKIE, SET_COOKIE, VARY};
use hyper::{Response, StatusCode};
use serde::Deserialize;

use super::access::now_s;
use super::body::RequestBody;
use super::response::{full, ResBody};
use super::{Answer, App};
use crate::auth::Role;
use crate::dashboard::assets::{self, CSP, DASHBOARD_HTML, LOGIN_HTML};
use crate::dashboard::feed::MAX_STREAMS;
use crate::dashboard::session::{clear_cookie, cookie_value, set_cookie};
use crate::http::inventory::Inventory;
use crate::http::problem::{Problem, ProblemKind};
use crate::http::wire::parse_json;

/// `POST /dashboard/session` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignInBody {
    /// An admin token.
    token: String,
}

/// A 200 answer with `body` of `content_type`, and the dashboard's Content-Security-Policy.
fn page(content_type: &'static str, body: &'static str) -> Response<ResBody> {
    let mut res = Response::new(full(body));
    let h = res.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        hyper::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    res
}

/// A 204 answer setting the cookie `cookie`.
fn with_cookie(cookie: &str) -> Answer {
    let mut res = Response::new(full(""));
    *res.status_mut() = StatusCode::NO_CONTENT;
    let v = HeaderValue::from_str(cookie)
        .map_err(|_| Problem::internal("a session cookie is not a header value"))?;
    res.headers_mut().insert(SET_COOKIE, v);
    Ok(res)
}

/// `GET /dashboard/assets/{asset}`: one embedded file, or 404.
pub(super) fn asset(name: &str) -> Answer {
    let (content_type, body) = assets::asset(name)
        .ok_or_else(|| Problem::not_found(format!("no dashboard asset {name}")))?;
    Ok(page(content_type, body))
}

/// `DELETE /dashboard/session`: clears the session cookie (204, whoever asks).
pub(super) fn sign_out() -> Answer {
    with_cookie(&clear_cookie())
}

impl<E: Inventory> App<E> {
    /// Whether the request carries a valid dashboard session cookie.
    fn has_session(&self, headers: &HeaderMap) -> bool {
        let values = headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok());
        cookie_value(values).is_some_and(|c| self.session_key.verify(c, now_s()))
    }

    /// `GET /dashboard`: the dashboard with a session, else the sign-in page (both 200).
    pub(super) fn dashboard_page(&self, headers: &HeaderMap) -> Answer {
        let html = if self.has_session(headers) {
            DASHBOARD_HTML
        } else {
            LOGIN_HTML
        };
        let mut res = page("text/html; charset=utf-8", html);
        res.headers_mut()
            .insert(VARY, HeaderValue::from_static("Cookie"));
        Ok(res)
    }

    /// `POST /dashboard/session {token}`: 204 with the session cookie for an admin token;
    /// 401 for an unknown token, 403 for another role's.
    pub(super) async fn dashboard_sign_in<B: RequestBody>(
        &self,
        headers: &HeaderMap,
        body: B,
    ) -> Answer {
        let body = self.read_body(headers, body).await?;
        let SignInBody { token } = parse_json(&body)?;
        match self.config.tokens.role_of(token.trim()) {
            Some(Role::Admin) => with_cookie(&set_cookie(&self.session_key.issue(now_s()))),
            Some(_) => Err(Problem::new(
                ProblemKind::Forbidden,
                "the dashboard needs an admin token",
            )),
            None => Err(Problem::new(ProblemKind::Unauthenticated, "invalid token")),
        }
    }

    /// `GET /dashboard/events`: server-sent events, one sample per second, for a session
    /// cookie only (a bearer token is refused: an endless stream is for browsers; scripts
    /// read `/metrics`). 429 when [`MAX_STREAMS`] are open.
    pub(super) fn dashboard_events(&self, headers: &HeaderMap) -> Answer {
        if !self.has_session(headers) {
            return Err(Problem::new(
                ProblemKind::Unauthenticated,
                "sign in at /dashboard first: the event stream takes the session cookie of \
                 POST /dashboard/session (scripts: /metrics takes no credential)",
            ));
        }
        let feed = self.dashboard.as_ref().ok_or_else(|| {
            let mut p = Problem::new(
                ProblemKind::Unavailable,
                "this server does not publish dashboard events",
            );
            p.retry_after_s = Some(60);
            p
        })?;
        let Some(body) = feed.open_stream() else {
            let mut p = Problem::new(
                ProblemKind::RateLimited,
                format!("{MAX_STREAMS} dashboard streams are open already; close one or retry"),
            );
            p.retry_after_s = Some(5);
            return Err(p);
        };
        let mut res = Response::new(body);
        let h = res.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        Ok(res)
    }
}
