//! Operations: every change to a tenant is a row first (PostgreSQL is the
//! truth), then a job id in Redis (the transport).

mod at_once;
pub mod lease;
pub mod model;
pub mod queue;
pub mod secrets;
pub mod store;
pub mod workers;

use std::net::IpAddr;

use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use model::{Operation, OperationKind, OperationState};
pub use queue::{OperationJob, OpsQueue};
pub use store::{Claim, FailureOutcome, NewOperation, OpsError, Requested};

use crate::audit;
use crate::domain::{TenantState, TransitionRefused, transition};
use crate::error_chain::Chain;
use crate::sealing::{Purpose, SealingKey};

/// Who asks, from where: recorded in the operation and the audit log.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `operator:<email>`, `customer:<email>` or `system:<component>`.
    pub name: String,
    pub address: Option<IpAddr>,
}

impl Actor {
    pub fn system(component: &str) -> Self {
        Self {
            name: format!("system:{component}"),
            address: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("tenant not found")]
    TenantNotFound,
    #[error("{kind} is not possible while the tenant is {state}")]
    NotAllowed {
        kind: OperationKind,
        state: TenantState,
    },
    #[error(transparent)]
    Transition(#[from] TransitionRefused),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Which tenant states allow a kind, and the state the request itself moves
/// the tenant to (others change state when the operation succeeds).
pub fn precondition(kind: OperationKind) -> (&'static [TenantState], Option<TenantState>) {
    use TenantState::*;
    match kind {
        OperationKind::Provision => (&[Pending, Failed], Some(Provisioning)),
        OperationKind::Delete => (&[Pending, Active, Suspended, Failed], Some(Deleting)),
        OperationKind::Suspend => (&[Active], None),
        OperationKind::Resume => (&[Suspended], None),
        OperationKind::Backup
        | OperationKind::Restore
        | OperationKind::ChangePlan
        | OperationKind::ResetAdminPassword
        | OperationKind::CollectUsage
        | OperationKind::HealthCheck
        | OperationKind::PruneBackups
        | OperationKind::SyncDomains => (&[Active, Suspended], None),
    }
}

/// Requests a change to a tenant: checks the tenant's state, moves it when
/// the kind says so, inserts the operation and the audit entry, all in one
/// transaction; then pushes the id to Redis. A failed push is only logged:
/// the reconciler pushes queued operations Redis does not have.
#[tracing::instrument(skip_all, fields(kind = %kind))]
pub async fn request_change(
    pool: &PgPool,
    queue: Option<&OpsQueue>,
    tenant_id: Uuid,
    kind: OperationKind,
    args: Value,
    actor: &Actor,
) -> Result<Requested, RequestError> {
    // The common case in one statement; a repeated request (one of the kind
    // already queued) takes the transaction, which returns the queued one.
    let requested =
        match at_once::request_change_at_once(pool, tenant_id, kind, &args, actor).await? {
            at_once::AtOnce::Created(operation) => Requested {
                operation: *operation,
                created: true,
            },
            at_once::AtOnce::NoTenant => return Err(RequestError::TenantNotFound),
            at_once::AtOnce::NotAllowed(state) => {
                let state: TenantState = state.parse().map_err(|_| RequestError::TenantNotFound)?;
                return Err(RequestError::NotAllowed { kind, state });
            }
            at_once::AtOnce::AlreadyQueued => {
                let mut tx = pool.begin().await?;
                let requested = request_change_in(&mut tx, tenant_id, kind, args, actor).await?;
                tx.commit().await?;
                requested
            }
        };
    push_after_commit(queue, requested.operation.id).await;
    Ok(requested)
}

/// The transactional part of [`request_change`], for callers that change
/// more in the same transaction; they call [`push_after_commit`] after it.
pub async fn request_change_in(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    kind: OperationKind,
    args: Value,
    actor: &Actor,
) -> Result<Requested, RequestError> {
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM tenants WHERE id = $1 FOR UPDATE")
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
    let state: TenantState = state
        .ok_or(RequestError::TenantNotFound)?
        .parse()
        .map_err(|_| RequestError::TenantNotFound)?;
    let (allowed, on_request) = precondition(kind);
    let already_there = on_request == Some(state);
    if !allowed.contains(&state) && !already_there {
        return Err(RequestError::NotAllowed { kind, state });
    }
    if let Some(next) = on_request.filter(|next| *next != state) {
        transition(state, next)?;
        sqlx::query("UPDATE tenants SET state = $2, updated_at = now() WHERE id = $1")
            .bind(tenant_id)
            .bind(next.as_str())
            .execute(&mut *tx)
            .await?;
    }
    let requested = store::request(
        &mut *tx,
        &NewOperation {
            tenant_id,
            kind,
            args: args.clone(),
            requested_by: actor.name.clone(),
        },
    )
    .await?;
    if requested.created {
        audit::record(
            &mut *tx,
            &audit::Entry {
                actor: &actor.name,
                action: &format!("tenant.{kind}"),
                target: Some(format!("tenant:{tenant_id}")),
                address: actor.address,
                details: serde_json::json!({
                    "operation": requested.operation.id,
                    "args": model::public_args(&args),
                }),
            },
        )
        .await?;
    }
    Ok(requested)
}

/// A secret an operation needs (a customer's new Odoo password), sealed
/// under `key` before it is stored; see [`crate::sealing`].
pub struct Secret<'a> {
    pub key: &'a SealingKey,
    pub purpose: Purpose,
    pub value: &'a secrecy::SecretString,
}

/// [`request_change`] for an operation that needs `secret`: sealed and stored
/// with the operation in the same transaction. When an operation of the kind
/// is already queued for the tenant, it is returned with the newest secret
/// in place of the one it held (the request is repeated, not duplicated),
/// and the repetition is audited.
#[tracing::instrument(skip_all, fields(kind = %kind))]
pub async fn request_change_with_secret(
    pool: &PgPool,
    queue: Option<&OpsQueue>,
    tenant_id: Uuid,
    kind: OperationKind,
    args: Value,
    actor: &Actor,
    secret: &Secret<'_>,
) -> Result<Requested, RequestError> {
    let mut tx = pool.begin().await?;
    let requested =
        request_change_with_secret_in(&mut tx, tenant_id, kind, args, actor, secret).await?;
    tx.commit().await?;
    push_after_commit(queue, requested.operation.id).await;
    Ok(requested)
}

/// The transactional part of [`request_change_with_secret`].
pub async fn request_change_with_secret_in(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    kind: OperationKind,
    args: Value,
    actor: &Actor,
    secret: &Secret<'_>,
) -> Result<Requested, RequestError> {
    let sealed = secret.key.seal(secret.purpose, tenant_id, secret.value);
    // A queued operation a worker starts between two statements takes no
    // new secret: the request then makes an operation of its own.
    for _ in 0..3 {
        let requested = request_change_in(&mut *tx, tenant_id, kind, args.clone(), actor).await?;
        if !secrets::store(&mut *tx, requested.operation.id, secret.purpose, &sealed).await? {
            continue;
        }
        if !requested.created {
            audit::record(
                &mut *tx,
                &audit::Entry {
                    actor: &actor.name,
                    action: &format!("tenant.{kind}"),
                    target: Some(format!("tenant:{tenant_id}")),
                    address: actor.address,
                    details: serde_json::json!({
                        "operation": requested.operation.id,
                        "repeated": true,
                    }),
                },
            )
            .await?;
        }
        return Ok(requested);
    }
    Err(RequestError::Database(sqlx::Error::Protocol(
        "the operation kept starting before its secret was stored".to_owned(),
    )))
}

/// Pushes a committed operation to Redis; a failure is only logged, since
/// the reconciler pushes queued operations that Redis lacks.
pub async fn push_after_commit(queue: Option<&OpsQueue>, id: Uuid) {
    if let Some(queue) = queue
        && let Err(err) = queue.push(id).await
    {
        tracing::warn!(error = %Chain(&err), "operation stored but not pushed; the reconciler will push it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_state_changes_are_allowed_transitions() {
        for kind in OperationKind::ALL {
            let (allowed, on_request) = precondition(*kind);
            if let Some(next) = on_request {
                for from in allowed {
                    assert!(transition(*from, next).is_ok(), "{kind}: {from} -> {next}");
                }
            }
        }
    }
}
