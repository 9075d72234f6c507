//! Checking a webhook target URL: http(s) only, and no private, loopback or link-local address
//! unless allowed (`serve --webhook-allow-private`), so an admin token cannot turn the server
//! into a probe of its own network.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest accepted URL, in characters.
pub const MAX_URL_LEN: usize = 1000;

/// Why a target URL is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL, or longer than [`MAX_URL_LEN`].
    #[error("not a valid absolute URL")]
    Malformed,
    /// Another scheme than http or https.
    #[error("only http and https URLs are accepted")]
    Scheme,
    /// Credentials in the URL (`user:pass@`).
    #[error("credentials in the URL are not accepted")]
    Credentials,
    /// The host is or resolves to a private, loopback, link-local or unspecified address.
    #[error("{0} is a private, loopback or link-local address (allowed only with serve --webhook-allow-private)")]
    Private(IpAddr),
    /// The host name does not resolve.
    #[error("host {0} does not resolve")]
    Unresolvable(String),
}

/// Whether `ip` is not on the public internet.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || v6 == Ipv6Addr::LOCALHOST
        }
    }
}

fn private_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
}

/// Checks `url` and resolves its host; `allow_private` skips the address check.
pub async fn check_target(url: &str, allow_private: bool) -> Result<reqwest::Url, TargetError> {
    if url.chars().count() > MAX_URL_LEN {
        return Err(TargetError::Malformed);
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| TargetError::Malformed)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetError::Scheme);
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::Credentials);
    }
    let Some(host) = parsed.host() else {
        return Err(TargetError::Malformed);
    };
    if allow_private {
        return Ok(parsed);
    }
    let name = match host {
        url::Host::Ipv4(ip) => return checked(parsed.clone(), IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => return checked(parsed.clone(), IpAddr::V6(ip)),
        url::Host::Domain(d) => d.to_string(),
    };
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs = tokio::net::lookup_host((name.as_str(), port))
        .await
        .map_err(|_| TargetError::Unresolvable(name.clone()))?;
    let mut any = false;
    for a in addrs {
        any = true;
        if is_private(a.ip()) {
            return Err(TargetError::Private(a.ip()));
        }
    }
    if !any {
        return Err(TargetError::Unresolvable(name));
    }
    Ok(parsed)
}

/// `url` unless `ip` is private.
fn checked(url: reqwest::Url, ip: IpAddr) -> Result<reqwest::Url, TargetError> {
    if is_private(ip) {
        Err(TargetError::Private(ip))
    } else {
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn schemes_and_private_addresses() {
        assert_eq!(
            check_target("ftp://example.com/x", true).await,
            Err(TargetError::Scheme)
        );
        assert_eq!(
            check_target("not a url", true).await,
            Err(TargetError::Malformed)
        );
        assert_eq!(
            check_target("/relative", true).await,
            Err(TargetError::Malformed)
        );
        assert!(matches!(
            check_target("http://2130706433/", false).await,
            Err(TargetError::Private(_))
        ));
        assert_eq!(
            check_target("http://u:p@192.0.2.10/x", false).await,
            Err(TargetError::Credentials)
        );
        for private in [
            "http://127.0.0.1:9000/hook",
            "http://10.1.2.3/",
            "https://192.168.0.1/",
            "http://169.254.169.254/latest",
            "http://[::1]:8080/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:1234/",
        ] {
            assert!(
                matches!(
                    check_target(private, false).await,
                    Err(TargetError::Private(_))
                ),
                "{private}"
            );
            assert!(check_target(private, true).await.is_ok(), "{private}");
        }
        assert!(check_target("https://192.0.2.10/hook", false).await.is_ok());
    }
}
