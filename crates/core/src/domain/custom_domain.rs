//! Customers' own domains: what may be claimed, in the one form it is
//! stored and compared in (IDNA A-labels, lower case, no trailing dot).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The longest domain name DNS carries (RFC 1035, without the root dot).
pub const MAX_DOMAIN_LEN: usize = 253;

/// Why a domain cannot be claimed; `field` is the input's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct DomainRefused {
    pub field: &'static str,
    pub reason: String,
}

fn refused(reason: impl Into<String>) -> DomainRefused {
    DomainRefused {
        field: "domain",
        reason: reason.into(),
    }
}

/// Normalises what a customer typed (`ERP.Acme.com.`, `bücher.example`)
/// into the stored form (`erp.acme.com`, `xn--bcher-kva.example`), or says
/// why it cannot be one of a tenant's domains: IP addresses, single
/// labels, wildcards, over-long names, `localhost`, and `base_domain`
/// with every name under it (the platform's own hosts) are refused.
pub fn normalize_domain(input: &str, base_domain: &str) -> Result<String, DomainRefused> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(refused("is required"));
    }
    if trimmed.chars().count() > MAX_DOMAIN_LEN + 1 {
        return Err(refused(format!(
            "is longer than {MAX_DOMAIN_LEN} characters"
        )));
    }
    if trimmed.contains('*') {
        return Err(refused(
            "wildcards are not supported: add each name on its own",
        ));
    }
    let bare = trimmed.strip_suffix('.').unwrap_or(trimmed);
    let unbracketed = bare.trim_start_matches('[').trim_end_matches(']');
    if unbracketed.parse::<std::net::IpAddr>().is_ok() {
        return Err(refused("must be a domain name, not an IP address"));
    }
    if bare.contains("..") || bare.starts_with('.') {
        return Err(refused("has an empty label (two dots in a row)"));
    }
    if bare.contains(['/', ':', '@', ' ', '\\', '?', '#']) {
        return Err(refused(
            "must be a bare domain name such as erp.example.com (no scheme, port or path)",
        ));
    }
    let ascii = idna::domain_to_ascii_strict(bare)
        .map_err(|_| refused("is not a valid internationalised domain name"))?;
    let ascii = ascii.to_ascii_lowercase();
    check_labels(&ascii)?;
    if ascii == "localhost" || ascii.ends_with(".localhost") {
        return Err(refused("localhost names cannot be served"));
    }
    let base = base_domain.trim_end_matches('.').to_ascii_lowercase();
    if ascii == base || ascii.ends_with(&format!(".{base}")) {
        return Err(refused(format!(
            "{base} and its subdomains belong to the platform"
        )));
    }
    Ok(ascii)
}

fn check_labels(ascii: &str) -> Result<(), DomainRefused> {
    if ascii.len() > MAX_DOMAIN_LEN {
        return Err(refused(format!(
            "is longer than {MAX_DOMAIN_LEN} characters"
        )));
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err(refused(
            "needs at least two labels, such as erp.example.com",
        ));
    }
    for label in &labels {
        if label.is_empty() {
            return Err(refused("has an empty label (two dots in a row)"));
        }
        if label.len() > 63 {
            return Err(refused("has a label longer than 63 characters"));
        }
        let ok = label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(refused(format!(
                "label {label:?} may hold only letters, digits and inner hyphens"
            )));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(refused("must be a domain name, not an IP address"));
    }
    Ok(())
}

/// Where a domain is on its way to being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainState {
    /// Waiting for the TXT and CNAME (or address) records.
    PendingDns,
    /// DNS checked; a certificate is next.
    Verified,
    /// The ACME order is running.
    Issuing,
    /// Served over HTTPS with its certificate.
    Live,
    /// Issuing failed; `reason` says why.
    Failed,
}

impl DomainState {
    pub const ALL: &'static [DomainState] = &[
        DomainState::PendingDns,
        DomainState::Verified,
        DomainState::Issuing,
        DomainState::Live,
        DomainState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DomainState::PendingDns => "pending_dns",
            DomainState::Verified => "verified",
            DomainState::Issuing => "issuing",
            DomainState::Live => "live",
            DomainState::Failed => "failed",
        }
    }

    /// What a customer reads.
    pub fn label(self) -> &'static str {
        match self {
            DomainState::PendingDns => "waiting for DNS",
            DomainState::Verified => "DNS verified",
            DomainState::Issuing => "getting a certificate",
            DomainState::Live => "live",
            DomainState::Failed => "failed",
        }
    }
}

impl fmt::Display for DomainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DomainState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DomainState::ALL
            .iter()
            .copied()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown domain state {s:?}"))
    }
}

/// The name of the TXT record that proves a customer controls `domain`.
pub fn txt_record_name(domain: &str) -> String {
    format!("_odoo-saas.{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "saas.example";

    #[test]
    fn normalises_case_trailing_dot_and_unicode() {
        assert_eq!(
            normalize_domain(" ERP.Acme.COM. ", BASE).as_deref(),
            Ok("erp.acme.com")
        );
        assert_eq!(
            normalize_domain("bücher.example", BASE).as_deref(),
            Ok("xn--bcher-kva.example")
        );
        assert_eq!(
            normalize_domain("BÜCHER.example", BASE).as_deref(),
            Ok("xn--bcher-kva.example")
        );
        assert_eq!(
            normalize_domain("xn--bcher-kva.example", BASE).as_deref(),
            Ok("xn--bcher-kva.example")
        );
    }

    #[test]
    fn refuses_what_cannot_be_a_customers_domain() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}com", "abcdefghi.".repeat(30));
        for bad in [
            "",
            "   ",
            "localhost",
            "app.localhost",
            "a..b.com",
            ".acme.com",
            "*.x.com",
            "127.0.0.1",
            "[::1]",
            "::1",
            "10.0.0.1.",
            "1.2.3.4",
            "acme",
            "saas.example",
            "SAAS.example.",
            "admin.saas.example",
            "portal.saas.example",
            "acme.saas.example",
            "http://acme.com",
            "acme.com:443",
            "acme.com/path",
            "ac me.com",
            "-acme.com",
            "acme-.com",
            "a_b.com",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            let err = normalize_domain(bad, BASE).expect_err(bad);
            assert_eq!(err.field, "domain", "{bad}");
            assert!(!err.reason.is_empty(), "{bad}");
        }
        assert!(
            normalize_domain(&"a".repeat(300), BASE)
                .unwrap_err()
                .reason
                .contains("longer than 253")
        );
        assert!(
            normalize_domain("acme.saas.example", BASE)
                .unwrap_err()
                .reason
                .contains("belong to the platform")
        );
        // A name that only ends like the base domain is not under it.
        assert!(normalize_domain("notsaas.example", BASE).is_ok());
    }

    #[test]
    fn states_round_trip() {
        for state in DomainState::ALL {
            assert_eq!(state.as_str().parse::<DomainState>(), Ok(*state));
        }
        assert!("gone".parse::<DomainState>().is_err());
    }
}
