//! The dashboard's files, embedded at build time (no CDN, nothing read from disk at run time).

/// The page shown with a valid session.
pub const DASHBOARD_HTML: &str = include_str!("assets/dashboard.html");
/// The page shown without one: a form for the admin token.
pub const LOGIN_HTML: &str = include_str!("assets/login.html");

/// `GET /dashboard/assets/{name}`: the file and its content type, if it is one of ours.
pub fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "dashboard.js" => Some((
            "text/javascript; charset=utf-8",
            include_str!("assets/dashboard.js"),
        )),
        "login.js" => Some((
            "text/javascript; charset=utf-8",
            include_str!("assets/login.js"),
        )),
        "favicon.svg" => Some(("image/svg+xml", include_str!("assets/favicon.svg"))),
        "dashboard.css" => Some((
            "text/css; charset=utf-8",
            include_str!("assets/dashboard.css"),
        )),
        _ => None,
    }
}

/// The Content-Security-Policy of the dashboard's pages: its own scripts, styles and event
/// stream only; no inline code, no other origin, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                       connect-src 'self'; img-src 'self'; form-action 'none'; base-uri 'none'; \
                       frame-ancestors 'none'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_refer_only_to_embedded_assets() {
        for page in [DASHBOARD_HTML, LOGIN_HTML] {
            for (attr, rest) in [("src=\"", 5), ("href=\"", 6)] {
                for (i, _) in page.match_indices(attr) {
                    let url = &page[i + rest..];
                    let url = &url[..url.find('"').unwrap()];
                    let name = url
                        .strip_prefix("/dashboard/assets/")
                        .unwrap_or_else(|| panic!("{url} is not an embedded asset"));
                    assert!(asset(name).is_some(), "{name}");
                }
            }
            assert!(
                !page.contains("<script>") && !page.contains("style="),
                "no inline code"
            );
        }
        assert!(asset("../Cargo.toml").is_none());
    }
}
