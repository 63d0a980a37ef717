//! Customers' own domains on one of their instances, shared by the web UI
//! and the JSON API. The caller has already checked that the instance is
//! the customer's ([`crate::actions::instance`]); core checks the domain
//! belongs to it, audits every change and requests the `sync_domains`
//! operation that verifies DNS, gets the certificate and routes the name.

use saas_core::domains::{self, DnsRecords, DomainError, TenantDomain};
use saas_core::tenants::Tenant;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::SignedIn;
use crate::error::AppError;
use crate::state::AppState;

/// The portal's answer to a refused domain request: the field and the
/// reason for input and plan limits, 409 for the instance's state.
pub fn domain_error(err: DomainError) -> AppError {
    match err {
        DomainError::Invalid(refused) => AppError::invalid(refused.field, refused.to_string()),
        DomainError::Taken => AppError::conflict(
            Some("domain"),
            "domain already used by another instance; remove it there first",
        ),
        DomainError::Limit(limit) => AppError::conflict(
            Some("domain"),
            format!("{limit}: remove a domain or choose a larger plan"),
        ),
        DomainError::TenantState(_) => AppError::conflict(None, err.to_string()),
        DomainError::TenantNotFound | DomainError::NotFound => AppError::NotFound,
        DomainError::Database(err) => err.into(),
    }
}

/// The instance's domains, primary first.
pub async fn list(state: &AppState, tenant: &Tenant) -> Result<Vec<TenantDomain>, AppError> {
    Ok(domains::list_for_tenant(&state.db, tenant.id).await?)
}

/// Adds `raw` as typed; adding a name the instance already has returns
/// it again (`false`) and changes nothing.
pub async fn add(
    state: &AppState,
    who: &SignedIn,
    tenant: &Tenant,
    raw: &str,
) -> Result<(TenantDomain, bool), AppError> {
    let queue = state.queue().await;
    domains::add(
        &state.db,
        queue.as_ref(),
        tenant.id,
        raw,
        &state.base_domain,
        &who.actor(),
    )
    .await
    .map_err(domain_error)
}

pub async fn make_primary(
    state: &AppState,
    who: &SignedIn,
    tenant: &Tenant,
    domain_id: Uuid,
) -> Result<TenantDomain, AppError> {
    let queue = state.queue().await;
    domains::make_primary(
        &state.db,
        queue.as_ref(),
        tenant.id,
        domain_id,
        &who.actor(),
    )
    .await
    .map_err(domain_error)
}

pub async fn remove(
    state: &AppState,
    who: &SignedIn,
    tenant: &Tenant,
    domain_id: Uuid,
) -> Result<TenantDomain, AppError> {
    let queue = state.queue().await;
    domains::remove(
        &state.db,
        queue.as_ref(),
        tenant.id,
        domain_id,
        &who.actor(),
        None,
    )
    .await
    .map_err(domain_error)
}

/// The records a customer creates for `domain` of `tenant`.
pub fn records(state: &AppState, tenant: &Tenant, domain: &TenantDomain) -> DnsRecords {
    domain.dns_records(
        &state.instance_host(&tenant.subdomain),
        &state.settings.public_ips,
    )
}

/// A domain as the API shows it.
pub fn domain_json(state: &AppState, tenant: &Tenant, domain: &TenantDomain) -> Value {
    let live = domain.state == saas_core::domain::DomainState::Live;
    json!({
        "id": domain.id,
        "instance_id": domain.tenant_id,
        "domain": domain.domain,
        "display_name": domain.display_name(),
        "state": domain.state,
        "state_label": domain.state.label(),
        "reason": domain.reason,
        "primary": domain.is_primary,
        "url": live.then(|| format!("https://{}", domain.domain)),
        "dns": records(state, tenant, domain),
        "certificate": domain.cert_not_after.map(|not_after| json!({
            "issuer": domain.cert_issuer, "not_after": not_after, "renewed_at": domain.renewed_at,
        })),
        "checked_at": domain.checked_at,
        "created_at": domain.created_at,
    })
}
