//! Subdomains: RFC 1123 labels that are also safe PostgreSQL identifiers.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Names a customer may never take: they route to the platform itself or are
/// commonly expected to belong to it.
pub const RESERVED: &[&str] = &[
    "admin",
    "portal",
    "www",
    "api",
    "mail",
    "static",
    "smtp",
    "imap",
    "pop",
    "ftp",
    "ns1",
    "ns2",
    "dns",
    "mx",
    "webmail",
    "grafana",
    "prometheus",
    "alertmanager",
    "adminer",
    "status",
    "help",
    "support",
    "docs",
    "blog",
    "app",
    "dashboard",
    "odoo",
    "root",
    "test",
    "localhost",
    "assets",
    "cdn",
    "metrics",
    "auth",
    "login",
    "billing",
    "postgres",
    "template0",
    "template1",
];

pub const MIN_LEN: usize = 3;
pub const MAX_LEN: usize = 63;

/// A validated subdomain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subdomain(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubdomainError {
    #[error("must be {MIN_LEN} to {MAX_LEN} characters long")]
    Length,
    #[error("may contain only lower-case letters a-z, digits and hyphens")]
    Characters,
    #[error("must start and end with a letter or a digit")]
    Edge,
    /// `xn--...` is punycode for an internationalised name, and IDNA
    /// reserves every other `??--` label for future encodings. Browsers show
    /// `xn--` names in Unicode, so a customer could register a look-alike of
    /// another tenant's (or the platform's) name.
    #[error(
        "must not have hyphens in the third and fourth places (such as xn--...): \
         those names are reserved for internationalised domain names"
    )]
    IdnaReserved,
    #[error("is reserved")]
    Reserved,
}

impl Subdomain {
    pub fn parse(raw: &str) -> Result<Self, SubdomainError> {
        let len = raw.len();
        if !(MIN_LEN..=MAX_LEN).contains(&len) {
            return Err(SubdomainError::Length);
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(SubdomainError::Characters);
        }
        if raw.starts_with('-') || raw.ends_with('-') {
            return Err(SubdomainError::Edge);
        }
        if raw.get(2..4) == Some("--") {
            return Err(SubdomainError::IdnaReserved);
        }
        if RESERVED.contains(&raw) {
            return Err(SubdomainError::Reserved);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tenant's database name: the subdomain itself, because Odoo's
    /// `dbfilter = ^%d$` serves the database named by the first label of the
    /// host. It never collides with templates (`tpl_*`), the platform
    /// database or side databases of a restore, which all contain `_`, and
    /// PostgreSQL's own databases are reserved names.
    pub fn database_name(&self) -> String {
        self.0.clone()
    }
}

impl fmt::Display for Subdomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Subdomain {
    type Error = SubdomainError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Subdomain::parse(&value)
    }
}

impl From<Subdomain> for String {
    fn from(value: Subdomain) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert!(Subdomain::parse("acme").is_ok());
        assert!(Subdomain::parse("acme-2024").is_ok());
        assert!(Subdomain::parse("a1b").is_ok());
        assert_eq!(Subdomain::parse("ab"), Err(SubdomainError::Length));
        assert_eq!(
            Subdomain::parse(&"a".repeat(64)),
            Err(SubdomainError::Length)
        );
        assert!(Subdomain::parse(&"a".repeat(63)).is_ok());
        assert_eq!(Subdomain::parse("Acme"), Err(SubdomainError::Characters));
        assert_eq!(Subdomain::parse("ac_me"), Err(SubdomainError::Characters));
        assert_eq!(Subdomain::parse("acmé"), Err(SubdomainError::Characters));
        assert_eq!(Subdomain::parse("ac.me"), Err(SubdomainError::Characters));
        assert_eq!(Subdomain::parse("-acme"), Err(SubdomainError::Edge));
        assert_eq!(Subdomain::parse("acme-"), Err(SubdomainError::Edge));
        for name in ["xn--pple-43d", "xn--80ak6aa92e", "ab--cd", "a1--b", "xn--a"] {
            assert_eq!(
                Subdomain::parse(name),
                Err(SubdomainError::IdnaReserved),
                "{name}"
            );
        }
        assert!(Subdomain::parse("a--b").is_ok());
        assert!(Subdomain::parse("abc--d").is_ok());
        for name in ["admin", "portal", "www", "api", "mail", "static"] {
            assert_eq!(
                Subdomain::parse(name),
                Err(SubdomainError::Reserved),
                "{name}"
            );
        }
    }

    #[test]
    fn database_name_is_plain() -> Result<(), SubdomainError> {
        assert_eq!(Subdomain::parse("my-shop")?.database_name(), "my-shop");
        assert_eq!(Subdomain::parse("postgres"), Err(SubdomainError::Reserved));
        Ok(())
    }

    /// An RFC 1123 label, checked independently of the parser.
    fn is_dns_label(s: &str) -> bool {
        let bytes = s.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 63
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    }

    /// A database name PostgreSQL keeps whole (at most 63 bytes, no
    /// truncation) and that is safe inside double quotes and as a directory
    /// name: nothing to escape, no case folding surprises, no path syntax.
    fn is_safe_pg_identifier(s: &str) -> bool {
        let bytes = s.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 63
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && !s.contains("..")
            && !["postgres", "template0", "template1"].contains(&s)
    }

    proptest! {
        #[test]
        fn accepted_names_are_dns_labels_and_safe_identifiers(raw in "\\PC{0,70}") {
            if let Ok(sub) = Subdomain::parse(&raw) {
                prop_assert!(is_dns_label(sub.as_str()));
                prop_assert!(sub.as_str().get(2..4) != Some("--"));
                prop_assert_eq!(sub.as_str().to_ascii_lowercase(), sub.as_str());
                prop_assert!(is_safe_pg_identifier(&sub.database_name()));
            }
        }

        #[test]
        fn plausible_names_are_dns_labels_and_safe_identifiers(raw in "[a-z0-9-]{1,70}") {
            match Subdomain::parse(&raw) {
                Ok(sub) => {
                    prop_assert!(is_dns_label(sub.as_str()));
                    prop_assert!(sub.as_str().len() >= MIN_LEN);
                    prop_assert!(is_safe_pg_identifier(&sub.database_name()));
                }
                Err(_) => prop_assert!(
                    !is_dns_label(&raw)
                        || raw.len() < MIN_LEN
                        || RESERVED.contains(&raw.as_str())
                        || raw.get(2..4) == Some("--")
                ),
            }
        }
    }
}
