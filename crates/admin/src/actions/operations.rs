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
        OpsError::WrongState(..) | OpsError::AlreadyQueued | OpsError::Transition(_) => {
            Error::conflict(err.to_string())
        }
        OpsError::Database(err) => err.into(),
    }
}

/// What an operator does to an existing operation.
#[derive(Clone, Copy)]
enum Step {
    Retry,
    Cancel,
}

pub async fn retry(
    state: &AppState,
    user: &CurrentOperator,
    id: Uuid,
    reason: &str,
) -> Result<Operation> {
    change(state, user, id, reason, Step::Retry).await
}

pub async fn cancel(
    state: &AppState,
    user: &CurrentOperator,
    id: Uuid,
    reason: &str,
) -> Result<Operation> {
    change(state, user, id, reason, Step::Cancel).await
}

/// Applies `step` and its audit entry in one transaction; a retried
/// operation is queued once committed.
async fn change(
    state: &AppState,
    user: &CurrentOperator,
    id: Uuid,
    reason: &str,
    step: Step,
) -> Result<Operation> {
    user.require(Role::Operator)?;
    let reason = check_text("reason", reason, MAX_TEXT)?;
    let mut tx = state.db.begin().await?;
    let (operation, action) = match step {
        Step::Retry => (store::retry(&mut tx, id).await, "operation.retry"),
        Step::Cancel => (store::cancel(&mut tx, id).await, "operation.cancel"),
    };
    let operation = operation.map_err(ops_error)?;
    record(
        &mut tx,
        user,
        action,
        format!("operation:{id}"),
        serde_json::json!({ "tenant": operation.tenant_id, "kind": operation.kind, "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    if let Step::Retry = step {
        let queue = state.queue().await;
        ops::push_after_commit(queue.as_ref(), id).await;
    }
    Ok(operation)
}
