//! Customers' own domains, as operators act on them: retry (DNS checked
//! anew, or a new certificate for a live one) and remove. Core audits each
//! with the operator and the reason, and requests the `sync_domains`
//! operation that brings DNS, certificates and nginx's maps in line.

use saas_core::domains::{self, DomainError, TenantDomain};
use uuid::Uuid;

use crate::auth::{CurrentOperator, Role};
use crate::error::{Error, Result};
use crate::params::{MAX_TEXT, check_text};
use crate::state::AppState;

pub fn domain_error(err: DomainError) -> Error {
    let field = err.field().map(str::to_owned);
    match err {
        DomainError::Invalid(refused) => Error::invalid(refused.field, refused.reason),
        DomainError::Taken | DomainError::Limit(_) => Error::Conflict {
            message: err.to_string(),
            field,
        },
        DomainError::TenantState(_) => Error::conflict(err.to_string()),
        DomainError::TenantNotFound => Error::NotFound("tenant"),
        DomainError::NotFound => Error::NotFound("domain"),
        DomainError::Database(err) => err.into(),
    }
}

/// Checks DNS again (a failed or stuck domain starts over), or renews a
/// live domain's certificate now.
pub async fn retry(
    state: &AppState,
    user: &CurrentOperator,
    id: Uuid,
    reason: &str,
) -> Result<TenantDomain> {
    user.require(Role::Operator)?;
    let reason = check_text("reason", reason, MAX_TEXT)?;
    let queue = state.queue().await;
    domains::retry(
        &state.db,
        queue.as_ref(),
        id,
        &user.actor(),
        Some(reason.as_str()).filter(|r| !r.is_empty()),
    )
    .await
    .map_err(domain_error)
}

/// Removes a domain from its tenant: its route and certificate go.
pub async fn remove(
    state: &AppState,
    user: &CurrentOperator,
    id: Uuid,
    reason: &str,
) -> Result<TenantDomain> {
    user.require(Role::Operator)?;
    let reason = check_text("reason", reason, MAX_TEXT)?;
    let row = domains::find(&state.db, id)
        .await?
        .ok_or(Error::NotFound("domain"))?;
    let queue = state.queue().await;
    domains::remove(
        &state.db,
        queue.as_ref(),
        row.tenant_id,
        id,
        &user.actor(),
        Some(reason.as_str()).filter(|r| !r.is_empty()),
    )
    .await
    .map_err(domain_error)
}
