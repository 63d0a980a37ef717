//! Customers' own domains (issue 14): the `sync_domains` operation brings a
//! tenant's domains in line with their rows: DNS checked for those waiting
//! (retried with the engine's backoff while any still waits), certificates
//! issued or renewed, nginx's maps written, files of removed domains taken
//! away, and Odoo's `web.base.url` pointed at the live primary domain.

pub mod acme;
pub mod dns;
pub mod store;

use std::sync::LazyLock;

use chrono::Utc;
use prometheus::{IntCounter, IntGauge};
use saas_core::domain::DomainState;
use saas_core::domain_settings::DomainSettings;
use saas_core::domains::{self, Installed, TenantDomain};
use saas_core::ops::{Actor, Operation};
use sqlx::PgPool;

use crate::handlers::HandlerError;
use crate::lease::Lease;
use crate::platform::Inner;
use crate::servers::TenantPlacement;

/// Renew this long before a certificate expires.
pub const RENEW_BEFORE_DAYS: i64 = 30;
/// The alert fires when a certificate expires within this many days.
pub const ALERT_BEFORE_DAYS: i64 = 14;

/// Failed renewals since start (`certificate_renewal_failures_total`).
pub static RENEWAL_FAILURES: LazyLock<IntCounter> = LazyLock::new(|| {
    IntCounter::new(
        "certificate_renewal_failures_total",
        "Renewals of a custom domain's certificate that failed (the old certificate stays)",
    )
    .expect("a constant, valid metric name")
});

/// Live domains whose certificate expires within 14 days.
pub static EXPIRING: LazyLock<IntGauge> = LazyLock::new(|| {
    IntGauge::new(
        "custom_domain_certificates_expiring",
        "Live custom domains whose certificate expires within 14 days (renewal has not fixed it)",
    )
    .expect("a constant, valid metric name")
});

/// DNS, ACME and the store, built once at start.
pub struct Domains {
    pub settings: DomainSettings,
    pub dns: dns::Dns,
    pub acme: acme::Acme,
}

impl Domains {
    pub fn new(settings: DomainSettings) -> Result<Self, String> {
        Ok(Self {
            dns: dns::Dns::new(&settings)?,
            acme: acme::Acme::new(&settings),
            settings,
        })
    }
}

fn actor() -> Actor {
    Actor::system("worker")
}

/// Runs one attempt of `sync_domains` for the tenant.
pub(crate) async fn sync(
    inner: &Inner,
    placement: &TenantPlacement,
    _operation: &Operation,
    lease: &Lease,
) -> Result<(), HandlerError> {
    let tenant_host = format!("{}.{}", placement.subdomain, inner.public.base_domain());
    let mut waiting = Vec::new();
    for domain in domains::list_for_tenant(&inner.pool, placement.tenant_id).await? {
        lease.check().await?;
        match domain.state {
            DomainState::PendingDns => {
                if let Some(reason) = verify(inner, lease, &domain, &tenant_host).await? {
                    waiting.push(format!("{}: {reason}", domain.domain));
                    continue;
                }
                let mut verified = domain.clone();
                verified.state = DomainState::Verified;
                issue(inner, lease, &verified).await?;
            }
            DomainState::Verified | DomainState::Issuing => issue(inner, lease, &domain).await?,
            DomainState::Live if renewal_due(inner, &domain) => {
                renew(inner, lease, &domain).await?
            }
            DomainState::Live | DomainState::Failed => {}
        }
    }
    write_domain_maps(&inner.pool, &inner.domains.settings).await?;
    sweep(inner).await;
    point_odoo(inner, placement, lease).await?;
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(HandlerError::transient(format!(
            "waiting for DNS: {}",
            waiting.join("; ")
        )))
    }
}

async fn change_state(
    inner: &Inner,
    lease: &Lease,
    domain: &TenantDomain,
    to: DomainState,
    reason: Option<&str>,
) -> Result<(), HandlerError> {
    let mut tx = inner.pool.begin().await?;
    lease.guard(&mut tx).await?;
    domains::set_state(&mut tx, domain, domain.state, to, reason, &actor()).await?;
    tx.commit().await?;
    Ok(())
}

/// Checks DNS; `Some(reason)` while the domain must wait.
async fn verify(
    inner: &Inner,
    lease: &Lease,
    domain: &TenantDomain,
    tenant_host: &str,
) -> Result<Option<String>, HandlerError> {
    let checked = inner
        .domains
        .dns
        .verify(&domain.domain, &domain.token, tenant_host)
        .await;
    match checked {
        Ok(()) => {
            change_state(inner, lease, domain, DomainState::Verified, None).await?;
            tracing::info!("custom domain verified");
            Ok(None)
        }
        Err(dns::Unverified::Stuck(reason) | dns::Unverified::Lookup(reason)) => {
            change_state(inner, lease, domain, DomainState::PendingDns, Some(&reason)).await?;
            Ok(Some(reason))
        }
    }
}

/// Orders the certificate, fenced by the lease.
async fn order(
    inner: &Inner,
    lease: &Lease,
    domain: &TenantDomain,
) -> Result<Result<(std::path::PathBuf, store::CertificateFacts), String>, HandlerError> {
    let issued = tokio::select! {
        issued = inner.domains.acme.issue(&domain.domain) => issued,
        () = lease.lost() => return Err(crate::lease::taken_over()),
    };
    let installed = async {
        let issued = issued?;
        let facts = store::facts(&issued.chain_pem)?;
        let dir =
            store::install(&inner.domains.settings.cert_store, &domain.domain, &issued).await?;
        Ok((dir, facts))
    }
    .await;
    Ok(installed)
}

async fn record_installed(
    inner: &Inner,
    lease: &Lease,
    domain: &TenantDomain,
    facts: &store::CertificateFacts,
) -> Result<(), HandlerError> {
    let mut tx = inner.pool.begin().await?;
    lease.guard(&mut tx).await?;
    domains::record_certificate(
        &mut tx,
        domain,
        &Installed {
            issuer: &facts.issuer,
            not_after: facts.not_after,
        },
        &actor(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn issue(inner: &Inner, lease: &Lease, domain: &TenantDomain) -> Result<(), HandlerError> {
    change_state(inner, lease, domain, DomainState::Issuing, None).await?;
    let mut issuing = domain.clone();
    issuing.state = DomainState::Issuing;
    match order(inner, lease, &issuing).await? {
        Ok((_, facts)) => {
            record_installed(inner, lease, &issuing, &facts).await?;
            tracing::info!(issuer = %facts.issuer, not_after = %facts.not_after, "certificate issued");
        }
        Err(reason) => {
            tracing::warn!(error = %reason, "certificate not issued");
            let reason = format!("the certificate could not be issued: {reason}");
            let reason: String = reason.chars().take(500).collect();
            change_state(inner, lease, &issuing, DomainState::Failed, Some(&reason)).await?;
        }
    }
    Ok(())
}

fn renewal_due(inner: &Inner, domain: &TenantDomain) -> bool {
    let soon = Utc::now() + chrono::Duration::days(RENEW_BEFORE_DAYS);
    domain.renew_requested_at.is_some()
        || domain.cert_not_after.is_none_or(|expiry| expiry < soon)
        || store::current(&inner.domains.settings.cert_store, &domain.domain).is_none()
}

async fn renew(inner: &Inner, lease: &Lease, domain: &TenantDomain) -> Result<(), HandlerError> {
    match order(inner, lease, domain).await? {
        Ok((_, facts)) => {
            record_installed(inner, lease, domain, &facts).await?;
            tracing::info!(issuer = %facts.issuer, not_after = %facts.not_after, "certificate renewed");
        }
        Err(reason) => {
            RENEWAL_FAILURES.inc();
            tracing::warn!(error = %reason, "certificate renewal failed; the old certificate stays");
            let mut tx = inner.pool.begin().await?;
            lease.guard(&mut tx).await?;
            domains::record_renewal_failure(&mut tx, domain, &reason, &actor()).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// Rewrites nginx's maps for every live domain of an active or suspended
/// tenant whose certificate is in the store.
pub async fn write_domain_maps(
    pool: &PgPool,
    settings: &DomainSettings,
) -> Result<(), HandlerError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT d.domain, t.subdomain FROM tenant_domains d JOIN tenants t ON t.id = d.tenant_id
         WHERE d.state = 'live' AND t.state IN ('active', 'suspended') ORDER BY d.domain",
    )
    .fetch_all(pool)
    .await?;
    let served: Vec<store::Served> = rows
        .into_iter()
        .filter_map(|(domain, subdomain)| {
            let certificate = store::current(&settings.cert_store, &domain)?;
            let certificate = std::path::absolute(&certificate).unwrap_or(certificate);
            Some(store::Served {
                domain,
                subdomain,
                certificate,
            })
        })
        .collect();
    store::write_maps(&settings.map_dir, &served)
        .await
        .map_err(|err| HandlerError::transient(format!("writing the custom domain maps: {err}")))
}

/// Takes away the files of removed domains (and of deleted tenants').
pub(crate) async fn sweep(inner: &Inner) {
    let keep: Result<Vec<String>, _> = sqlx::query_scalar(
        "SELECT d.domain FROM tenant_domains d JOIN tenants t ON t.id = d.tenant_id
         WHERE t.state <> 'deleted'",
    )
    .fetch_all(&inner.pool)
    .await;
    let keep = match keep {
        Ok(keep) => keep,
        Err(err) => {
            tracing::warn!(error = %saas_core::error_chain::Chain(&err), "listing domains for the sweep failed");
            return;
        }
    };
    let settings = &inner.domains.settings;
    match store::sweep(&settings.cert_store, &settings.challenge_dir, keep).await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "certificates of removed domains deleted"),
        Err(err) => tracing::warn!(error = %err, "sweeping the certificate store failed"),
    }
}

/// Odoo's `web.base.url`: the live primary domain over https, else the
/// tenant's platform URL. A suspended tenant's database is left alone
/// (Odoo cannot reach it); its next sync sets it.
async fn point_odoo(
    inner: &Inner,
    placement: &TenantPlacement,
    lease: &Lease,
) -> Result<(), HandlerError> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM tenants WHERE id = $1")
        .bind(placement.tenant_id)
        .fetch_optional(&inner.pool)
        .await?;
    if state.as_deref() != Some("active") {
        return Ok(());
    }
    let primary = domains::live_primary(&inner.pool, placement.tenant_id).await?;
    let (url, freeze) = match &primary {
        Some(domain) => (
            url::Url::parse(&format!("https://{domain}")).map_err(|err| {
                HandlerError::permanent(format!("{domain} is no URL host: {err}"))
            })?,
            true,
        ),
        None => (crate::platform::tenant_base_url(inner, placement)?, false),
    };
    let server = placement.server()?;
    crate::platform::fenced(
        lease,
        saas_odoo::set_base_url(
            &server,
            &placement.db_name,
            placement.tenant_id,
            &url,
            freeze,
        ),
    )
    .await
}

/// Refreshes the expiry gauge.
pub async fn expiry_metrics(pool: &PgPool) -> Result<(), sqlx::Error> {
    let expiring: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM tenant_domains d JOIN tenants t ON t.id = d.tenant_id
         WHERE d.state = 'live' AND t.state IN ('active', 'suspended')
           AND d.cert_not_after < now() + interval '{ALERT_BEFORE_DAYS} days'"
    ))
    .fetch_one(pool)
    .await?;
    EXPIRING.set(expiring);
    Ok(())
}
