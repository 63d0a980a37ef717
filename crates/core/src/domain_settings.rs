//! What the worker needs for customers' own domains (issue 14): DNS
//! resolvers for the ownership check, the platform's public addresses, the
//! ACME CA, and where certificates, challenges and nginx's maps live.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use crate::config::{ConfigError, Env};

/// Let's Encrypt's production directory, the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone)]
pub struct DomainSettings {
    /// `DNS_RESOLVERS`: the servers the ownership check asks; empty means
    /// the system's (`/etc/resolv.conf`).
    pub resolvers: Vec<SocketAddr>,
    /// `PUBLIC_IPS`: the addresses a domain may point at instead of a
    /// CNAME to the tenant's host; empty means whatever the tenant's host
    /// resolves to.
    pub public_ips: Vec<IpAddr>,
    /// `ACME_DIRECTORY_URL`.
    pub acme_directory: String,
    /// `ACME_CONTACT_EMAIL`: the account's contact, optional.
    pub acme_contact: Option<String>,
    /// `ACME_CA_BUNDLE`: a PEM root certificate the ACME server's own HTTPS
    /// is checked against instead of the system's roots (a private CA).
    pub acme_ca_bundle: Option<PathBuf>,
    /// `ACME_CHALLENGE_DIR`: HTTP-01 answers, served by nginx under
    /// `/.well-known/acme-challenge/`.
    pub challenge_dir: PathBuf,
    /// `CERT_STORE_DIR`: the ACME account, and each domain's key and chain.
    pub cert_store: PathBuf,
    /// nginx's maps for custom domains: `domains/` beside the routing map.
    pub map_dir: PathBuf,
}

fn socket_addr(raw: &str) -> Option<SocketAddr> {
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    raw.parse::<SocketAddr>().ok()
}

fn list<T>(raw: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
    raw.split([',', ' '])
        .filter(|item| !item.is_empty())
        .map(parse)
        .collect()
}

/// `PUBLIC_IPS`: the worker accepts a domain pointing at one of these, and
/// the portal tells customers to point at them (empty: neither names any).
pub fn public_ips(env: &Env) -> Result<Vec<IpAddr>, ConfigError> {
    env.parse_or(
        "PUBLIC_IPS",
        Vec::new(),
        "a comma-separated list of IP addresses, or empty to accept the addresses the tenants' hosts resolve to",
        |v| list(v, |ip| ip.parse::<IpAddr>().ok()),
    )
}

impl DomainSettings {
    /// Reads the variables; the directories default to siblings of the
    /// routing map (`routing_map_path`), the volume nginx already reads.
    pub fn from_env(env: &Env, routing_map_path: &Path) -> Result<Self, ConfigError> {
        let routing_dir = routing_map_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let resolvers = env.parse_or(
            "DNS_RESOLVERS",
            Vec::new(),
            "a comma-separated list of ip or ip:port ([ipv6]:port), or empty for the system's resolvers",
            |v| list(v, socket_addr),
        )?;
        let public_ips = public_ips(env)?;
        let acme_directory = env.parse_or(
            "ACME_DIRECTORY_URL",
            LETS_ENCRYPT.to_owned(),
            "the https:// URL of an ACME v2 directory",
            |v| {
                let url = url::Url::parse(v).ok()?;
                (url.scheme() == "https" && url.host_str().is_some()).then(|| v.to_owned())
            },
        )?;
        let acme_contact = env.parse_or(
            "ACME_CONTACT_EMAIL",
            None,
            "an email address such as ops@example.com, or empty",
            |v| {
                let (user, host) = v.split_once('@')?;
                (!user.is_empty() && host.contains('.') && !v.contains([' ', ',', ':']))
                    .then(|| Some(v.to_owned()))
            },
        )?;
        let acme_ca_bundle = env.parse_or(
            "ACME_CA_BUNDLE",
            None,
            "the path of a PEM file holding the ACME server's root certificate, or empty",
            |v| Some(Some(PathBuf::from(v))),
        )?;
        let dir = |name: &'static str, default: PathBuf| {
            env.parse_or(name, default, "a directory path", |v| {
                Some(PathBuf::from(v))
            })
        };
        Ok(Self {
            resolvers,
            public_ips,
            acme_directory,
            acme_contact,
            acme_ca_bundle,
            challenge_dir: dir("ACME_CHALLENGE_DIR", routing_dir.join("acme-challenge"))?,
            cert_store: dir("CERT_STORE_DIR", routing_dir.join("certs"))?,
            map_dir: routing_dir.join("domains"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_sit_beside_the_routing_map() -> Result<(), ConfigError> {
        let settings = DomainSettings::from_env(
            &Env::default(),
            Path::new("/var/lib/odoo-saas/routing/tenants.map"),
        )?;
        assert!(settings.resolvers.is_empty());
        assert_eq!(settings.acme_directory, LETS_ENCRYPT);
        assert_eq!(
            settings.challenge_dir,
            Path::new("/var/lib/odoo-saas/routing/acme-challenge")
        );
        assert_eq!(
            settings.cert_store,
            Path::new("/var/lib/odoo-saas/routing/certs")
        );
        assert_eq!(
            settings.map_dir,
            Path::new("/var/lib/odoo-saas/routing/domains")
        );
        Ok(())
    }

    #[test]
    fn lists_parse_and_bad_values_name_the_variable() -> Result<(), ConfigError> {
        let env = Env::from_pairs([
            ("DNS_RESOLVERS", "127.0.0.1:5353, 10.0.0.2,[::1]:53"),
            ("PUBLIC_IPS", "203.0.113.7,2001:db8::1"),
        ]);
        let settings = DomainSettings::from_env(&env, Path::new("tenants.map"))?;
        assert_eq!(settings.resolvers.len(), 3);
        assert_eq!(settings.resolvers[1].port(), 53);
        assert_eq!(settings.public_ips.len(), 2);
        for (var, bad) in [
            ("DNS_RESOLVERS", "dns.example"),
            ("PUBLIC_IPS", "1.2.3"),
            ("ACME_DIRECTORY_URL", "http://acme.example/dir"),
            ("ACME_CONTACT_EMAIL", "nobody"),
        ] {
            let err = DomainSettings::from_env(&Env::from_pairs([(var, bad)]), Path::new("x"))
                .expect_err(var);
            assert_eq!(err.var, var);
        }
        Ok(())
    }
}
