//! The platform's handlers: what each operation kind does to a tenant.

use futures::future::BoxFuture;
use saas_core::ops::{Operation, OperationKind};
use sqlx::PgPool;

use crate::handlers::{HandlerError, Handlers};

/// Handlers backed by the platform database and the Odoo data plane.
pub struct PlatformHandlers {
    pub pool: PgPool,
}

impl Handlers for PlatformHandlers {
    fn run(&self, operation: Operation) -> BoxFuture<'static, Result<(), HandlerError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            match operation.kind {
                OperationKind::Suspend => set_state(&pool, &operation, "active", "suspended").await,
                OperationKind::Resume => set_state(&pool, &operation, "suspended", "active").await,
                other => Err(HandlerError::permanent(format!(
                    "{other} is not handled by this worker yet"
                ))),
            }
        })
    }
}

async fn set_state(
    pool: &PgPool,
    operation: &Operation,
    from: &str,
    to: &str,
) -> Result<(), HandlerError> {
    let suspended_at = if to == "suspended" { "now()" } else { "NULL" };
    let updated = sqlx::query(&format!(
        "UPDATE tenants SET state = $3, suspended_at = {suspended_at}, updated_at = now()
         WHERE id = $1 AND state IN ($2, $3)"
    ))
    .bind(operation.tenant_id)
    .bind(from)
    .bind(to)
    .execute(pool)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(HandlerError::permanent(format!(
            "the tenant is no longer {from}"
        )));
    }
    Ok(())
}
