//! Who the client is. Without configuration, the peer of the TCP connection;
//! `X-Forwarded-For` and `X-Real-IP` only count when the peer is one of
//! `TRUSTED_PROXIES`, so a client cannot pick its own address (and escape
//! every per-address limit) by sending a header.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::config::{ConfigError, Env};

/// The proxies whose forwarded headers are believed (`TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// `TRUSTED_PROXIES`: addresses or CIDR ranges separated by commas or
    /// spaces; unset, empty or `none` trusts no one.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        env.parse_or(
            "TRUSTED_PROXIES",
            Self::default(),
            "addresses or CIDR ranges of the reverse proxies in front of the service, \
             separated by commas (such as 10.89.240.0/24,127.0.0.1), or none",
            Self::parse,
        )
    }

    pub fn parse(raw: &str) -> Option<Self> {
        if raw.trim().eq_ignore_ascii_case("none") {
            return Some(Self::default());
        }
        raw.split([',', ' ', '\t'])
            .filter(|part| !part.is_empty())
            .map(|part| {
                part.parse::<IpNet>()
                    .ok()
                    .or_else(|| part.parse::<IpAddr>().ok().map(IpNet::from))
            })
            .collect::<Option<Vec<_>>>()
            .map(|nets| Self(nets.into_iter().map(|n| n.trunc()).collect()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address. From a trusted peer, `X-Forwarded-For` is read
    /// from the right: its last entry was added by the peer, and every
    /// trusted proxy in the chain is skipped, so what the client itself
    /// wrote at the left is never reached while an untrusted hop remains.
    /// `X-Real-IP` (one address, set by nginx) counts when there is no
    /// `X-Forwarded-For`. An untrusted peer is the client, whatever it sends.
    pub fn client_address(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = peer?.to_canonical();
        if !self.contains(peer) {
            return Some(peer);
        }
        let chain: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        if chain.is_empty() {
            let real = headers
                .get("x-real-ip")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<IpAddr>().ok());
            return Some(real.map_or(peer, |ip| ip.to_canonical()));
        }
        let mut nearest = peer;
        for hop in chain.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                // A hop no proxy of ours would write: the trusted one
                // before it is the last address we know.
                return Some(nearest);
            };
            let ip = ip.to_canonical();
            if !self.contains(ip) {
                return Some(ip);
            }
            nearest = ip;
        }
        Some(nearest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = value.parse() {
                map.append(*name, value);
            }
        }
        map
    }

    fn ip(text: &str) -> Option<IpAddr> {
        text.parse().ok()
    }

    #[test]
    fn parses_lists_and_refuses_garbage() {
        assert_eq!(
            TrustedProxies::parse("none"),
            Some(TrustedProxies::default())
        );
        assert_eq!(TrustedProxies::parse(""), Some(TrustedProxies::default()));
        let trusted = TrustedProxies::parse("10.89.240.0/24, 127.0.0.1 ::1").unwrap_or_default();
        assert!(trusted.contains("10.89.240.7".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        assert!(
            trusted.contains(
                "::ffff:127.0.0.1"
                    .parse()
                    .unwrap_or(IpAddr::from([0, 0, 0, 0]))
            )
        );
        assert!(!trusted.contains("127.0.0.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))));
        for bad in ["10.0.0.0/33", "proxy", "10.0.0.1/8/2", "1.2.3.4;5.6.7.8"] {
            assert_eq!(TrustedProxies::parse(bad), None, "{bad}");
        }
        let env = Env::from_pairs([("TRUSTED_PROXIES", "nginx")]);
        assert_eq!(
            TrustedProxies::from_env(&env).map_err(|e| e.var),
            Err("TRUSTED_PROXIES")
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let none = TrustedProxies::default();
        let sent = headers(&[("x-forwarded-for", "1.2.3.4"), ("x-real-ip", "5.6.7.8")]);
        assert_eq!(none.client_address(ip("127.0.0.1"), &sent), ip("127.0.0.1"));
        assert_eq!(none.client_address(ip("10.0.0.5"), &sent), ip("10.0.0.5"));
        assert_eq!(none.client_address(None, &sent), None);
    }

    #[test]
    fn forwarded_chains_are_read_from_the_right_past_trusted_hops() {
        let trusted = TrustedProxies::parse("10.89.240.0/24,192.0.2.1").unwrap_or_default();
        let from_nginx = ip("10.89.240.5");
        // nginx appended the address it saw; what the client wrote is ignored.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9")]);
        assert_eq!(
            trusted.client_address(from_nginx, &chain),
            ip("203.0.113.9")
        );
        // A trusted load balancer before nginx is skipped too.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 192.0.2.1")]);
        assert_eq!(
            trusted.client_address(from_nginx, &chain),
            ip("203.0.113.9")
        );
        // Several headers are one list.
        let chain = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            trusted.client_address(from_nginx, &chain),
            ip("203.0.113.9")
        );
        // Garbage stops the walk at the last trusted hop.
        let chain = headers(&[("x-forwarded-for", "203.0.113.9, bogus, 192.0.2.1")]);
        assert_eq!(trusted.client_address(from_nginx, &chain), ip("192.0.2.1"));
        // All hops trusted (rootless podman: the gateway): the leftmost.
        let chain = headers(&[("x-forwarded-for", "10.89.240.1")]);
        assert_eq!(
            trusted.client_address(from_nginx, &chain),
            ip("10.89.240.1")
        );
        // X-Real-IP when there is no chain; a bad one leaves the peer.
        let real = headers(&[("x-real-ip", "203.0.113.7")]);
        assert_eq!(trusted.client_address(from_nginx, &real), ip("203.0.113.7"));
        let bad = headers(&[("x-real-ip", "not an address")]);
        assert_eq!(trusted.client_address(from_nginx, &bad), from_nginx);
    }
}
