//! Retrying a failed operation and cancelling a queued one.

use saas_core::ops::{self, Operation, OpsError, store};
use uuid::Uuid;

use super::record;
use crate::auth::{CurrentOperator, Role};
use crate::error::{Error, Result};
use crate::params::{MAX_TEXT, check_text};
use crate::state::AppState;

fn ops_error(err: OpsError) -> Error {
    match err {
        OpsError::NotFound => Error::NotFound("operation"),
        OpsError::WrongState(..) | OpsError::AlreadyQueued => Error::conflict(err.to_string()),
        OpsError::Database(err) => err.into(),
    }
}

pub async fn retry(
    state: &AppState,
    user: &CurrentOperator,
    id: Uuid,
    reason: &str,
) -> Result<Operation> {
    user.require(Role::Operator)?;
    let reason = check_text("reason", reason, MAX_TEXT)?;
    let mut tx = state.db.begin().await?;
    let operation = store::retry(&mut tx, id).await.map_err(ops_error)?;
    record(
        &mut tx,
        user,
        "operation.retry",
        format!("operation:{id}"),
        serde_json::json!({ "tenant": operation.tenant_id, "kind": operation.kind, "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    let queue = state.queue().await;
    ops::push_after_commit(queue.as_ref(), id).await;
    Ok(operation)
}

pub async fn cancel(
    state: &AppState,
    user: &CurrentOperator,
    id: Uuid,
    reason: &str,
) -> Result<Operation> {
    user.require(Role::Operator)?;
    let reason = check_text("reason", reason, MAX_TEXT)?;
    let mut tx = state.db.begin().await?;
    let operation = store::cancel(&mut tx, id).await.map_err(ops_error)?;
    record(
        &mut tx,
        user,
        "operation.cancel",
        format!("operation:{id}"),
        serde_json::json!({ "tenant": operation.tenant_id, "kind": operation.kind, "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    Ok(operation)
}
