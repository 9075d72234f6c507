//! The server under test: parsing `--target` and refusing anything that is not loopback.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// Why a `--target` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Only `http://` is spoken (the contract's API is plain HTTP/1.1 on loopback).
    #[error("target must start with http:// (got {0:?})")]
    Scheme(String),
    /// The URL has no host or a malformed port.
    #[error("target {0:?} is not http://HOST[:PORT]")]
    Malformed(String),
    /// The host name did not resolve.
    #[error("target host {0:?} did not resolve to an address")]
    Unresolved(String),
    /// The host is not a loopback address and `--allow-remote` was not given.
    #[error(
        "target {0} is not a loopback address (127.0.0.0/8, ::1, localhost); \
         load tests may only hit loopback unless --allow-remote is given"
    )]
    NotLoopback(SocketAddr),
}

/// A resolved HTTP target: where to connect and what to send as `Host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Socket address every buyer connects to.
    pub addr: SocketAddr,
    /// `host[:port]` for the `Host` header.
    pub authority: String,
}

impl Target {
    /// Parses `http://host[:port][/]`, resolves it and applies the loopback rule.
    pub fn parse(url: &str, allow_remote: bool) -> Result<Target, TargetError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| TargetError::Scheme(url.to_string()))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') || authority.contains('@') {
            return Err(TargetError::Malformed(url.to_string()));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| TargetError::Malformed(url.to_string()))?;
        let addr = resolve(host, port)?;
        if !allow_remote && !is_loopback(addr.ip()) {
            return Err(TargetError::NotLoopback(addr));
        }
        Ok(Target {
            addr,
            authority: authority.to_string(),
        })
    }
}

impl Target {
    /// `http://<authority>`, as given (without a trailing `/`).
    pub fn url(&self) -> String {
        format!("http://{}", self.authority)
    }
}

/// Splits `host[:port]` (IPv6 hosts in brackets); the port defaults to 80.
fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 80,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, port.parse().ok()?)),
        Some(_) => None,
        None => Some((authority, 80)),
    }
}

/// Resolves a host; `localhost` is pinned to 127.0.0.1 so a bad resolver cannot send load elsewhere.
fn resolve(host: &str, port: u16) -> Result<SocketAddr, TargetError> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| TargetError::Unresolved(host.to_string()))
}

/// True for 127.0.0.0/8, ::1 and IPv4-mapped loopback.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_are_accepted() {
        for (url, addr) in [
            ("http://127.0.0.1:8080", "127.0.0.1:8080"),
            ("http://127.3.2.1:9/", "127.3.2.1:9"),
            ("http://localhost:8080", "127.0.0.1:8080"),
            ("http://LOCALHOST", "127.0.0.1:80"),
            ("http://[::1]:8080", "[::1]:8080"),
            ("http://[::ffff:127.0.0.1]:1", "[::ffff:127.0.0.1]:1"),
        ] {
            let t = Target::parse(url, false).unwrap();
            assert_eq!(t.addr, addr.parse::<SocketAddr>().unwrap(), "{url}");
        }
    }

    #[test]
    fn remote_targets_are_refused_unless_allowed() {
        for url in [
            "http://10.0.0.1:8080",
            "http://[2001:db8::1]:80",
            "http://0.0.0.0:80",
        ] {
            assert!(
                matches!(Target::parse(url, false), Err(TargetError::NotLoopback(_))),
                "{url}"
            );
            assert!(Target::parse(url, true).is_ok(), "{url}");
        }
    }

    #[test]
    fn malformed_targets_are_refused() {
        assert!(matches!(
            Target::parse("https://127.0.0.1", false),
            Err(TargetError::Scheme(_))
        ));
        for url in [
            "http://",
            "http://127.0.0.1:x",
            "http://127.0.0.1/v1",
            "http://[::1",
        ] {
            assert!(
                matches!(Target::parse(url, false), Err(TargetError::Malformed(_))),
                "{url}"
            );
        }
    }
}
