//! The ownership check of a customer's domain, against the resolvers of
//! `DNS_RESOLVERS` (or the system's): the TXT record
//! `_odoo-saas.<domain>` holds the domain's token, and the domain is a CNAME
//! to the tenant's host or resolves to the platform's address.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use saas_core::domain::custom_domain::txt_record_name;
use saas_core::domain_settings::DomainSettings;

/// Why a domain does not check out yet: `Stuck` is the customer's to fix
/// (the sentence shown as the domain's reason); `Lookup` is a resolver
/// that did not answer, worth trying again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unverified {
    Stuck(String),
    Lookup(String),
}

pub struct Dns {
    resolver: TokioResolver,
    public_ips: Vec<IpAddr>,
}

impl Dns {
    pub fn new(settings: &DomainSettings) -> Result<Self, String> {
        let mut builder = if settings.resolvers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|err| format!("reading the system's DNS configuration: {err}"))?
        } else {
            let mut config = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
            for address in &settings.resolvers {
                let mut server = NameServerConfig::udp_and_tcp(address.ip());
                for connection in &mut server.connections {
                    connection.port = address.port();
                }
                config.add_name_server(server);
            }
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        };
        let options = builder.options_mut();
        // Every check asks again: a record the customer just fixed counts.
        options.cache_size = 0;
        options.timeout = Duration::from_secs(5);
        options.attempts = 2;
        let resolver = builder
            .build()
            .map_err(|err| format!("building the DNS resolver: {err}"))?;
        Ok(Self {
            resolver,
            public_ips: settings.public_ips.clone(),
        })
    }

    /// Checks `domain` (A-labels) for `token`, pointing at `tenant_host`.
    pub async fn verify(
        &self,
        domain: &str,
        token: &str,
        tenant_host: &str,
    ) -> Result<(), Unverified> {
        self.check_token(domain, token).await?;
        self.check_target(domain, tenant_host).await
    }

    async fn check_token(&self, domain: &str, token: &str) -> Result<(), Unverified> {
        let name = txt_record_name(domain);
        let values = self.records(&format!("{name}."), RecordType::TXT).await?;
        let texts: Vec<String> = values
            .iter()
            .filter_map(|data| match data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .map(|part| String::from_utf8_lossy(part).into_owned())
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect();
        if texts.is_empty() {
            return Err(Unverified::Stuck(format!("TXT record not found at {name}")));
        }
        if texts.iter().any(|text| text.trim() == token) {
            Ok(())
        } else {
            Err(Unverified::Stuck(format!(
                "TXT record at {name} does not hold this domain's token"
            )))
        }
    }

    async fn check_target(&self, domain: &str, tenant_host: &str) -> Result<(), Unverified> {
        let cname = self
            .records(&format!("{domain}."), RecordType::CNAME)
            .await?
            .into_iter()
            .find_map(|data| match data {
                RData::CNAME(target) => Some(
                    target
                        .0
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                ),
                _ => None,
            });
        if cname.as_deref() == Some(tenant_host) {
            return Ok(());
        }
        let allowed = self.platform_addresses(tenant_host).await?;
        let found = self.addresses(domain).await?;
        let outside: Vec<&IpAddr> = found.iter().filter(|ip| !allowed.contains(ip)).collect();
        if let Some(target) = cname
            && (found.is_empty() || !outside.is_empty())
        {
            return Err(Unverified::Stuck(format!("CNAME points to {target}")));
        }
        if found.is_empty() {
            return Err(Unverified::Stuck(format!(
                "no CNAME or address record found for {domain}: create a CNAME to {tenant_host}"
            )));
        }
        if let Some(ip) = outside.first() {
            return Err(Unverified::Stuck(format!(
                "{domain} resolves to {ip}, not to the platform's address: create a CNAME to {tenant_host}"
            )));
        }
        Ok(())
    }

    /// `PUBLIC_IPS`, else what the tenant's own host resolves to.
    async fn platform_addresses(&self, tenant_host: &str) -> Result<BTreeSet<IpAddr>, Unverified> {
        if !self.public_ips.is_empty() {
            return Ok(self.public_ips.iter().copied().collect());
        }
        let found = self.addresses(tenant_host).await?;
        if found.is_empty() {
            return Err(Unverified::Lookup(format!(
                "the platform's host {tenant_host} does not resolve (set PUBLIC_IPS)"
            )));
        }
        Ok(found)
    }

    async fn addresses(&self, host: &str) -> Result<BTreeSet<IpAddr>, Unverified> {
        let mut found = BTreeSet::new();
        for kind in [RecordType::A, RecordType::AAAA] {
            for data in self.records(&format!("{host}."), kind).await? {
                match data {
                    RData::A(a) => {
                        found.insert(IpAddr::V4(a.0));
                    }
                    RData::AAAA(aaaa) => {
                        found.insert(IpAddr::V6(aaaa.0));
                    }
                    _ => {}
                }
            }
        }
        Ok(found)
    }

    /// The answers of type `kind` for `name`; none when the name or the
    /// record does not exist.
    async fn records(&self, name: &str, kind: RecordType) -> Result<Vec<RData>, Unverified> {
        match self.resolver.lookup(name, kind).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter(|record| record.record_type() == kind)
                .map(|record| record.data.clone())
                .collect()),
            Err(err) if err.is_no_records_found() || err.is_nx_domain() => Ok(Vec::new()),
            Err(err) => Err(Unverified::Lookup(format!(
                "DNS lookup of {name} ({kind}) failed: {err}"
            ))),
        }
    }
}
