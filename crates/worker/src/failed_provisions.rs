//! A provision that failed for good, or was cancelled, leaves nothing behind:
//! the tenant's database (only one carrying this tenant's marker), its
//! unfinished side clones and its filestore copy are removed, so a retry
//! starts clean and a failed tenant holds no space on the server. A failed
//! tenant was never active, so it holds no customer data.

use sqlx::PgPool;
use uuid::Uuid;

use crate::handlers::HandlerError;
use crate::platform::odoo_error;
use crate::servers::{self, TenantPlacement};
use saas_core::error_chain::Chain;

/// Removes the tenant's database, unfinished clones and filestore; refuses
/// (leaving everything) when a database under its name is not the tenant's.
pub(crate) async fn remove_tenant_data(placement: &TenantPlacement) -> Result<(), HandlerError> {
    let server = placement.server()?;
    // Never drop a database this tenant does not own: one without its marker
    // under its name is someone else's (the mirror image of provisioning never
    // adopting it).
    saas_odoo::tenant_database(&server, &placement.db_name, placement.tenant_id)
        .await
        .and_then(|found| found.ours_or_missing(&placement.db_name))
        .map_err(odoo_error)?;
    saas_odoo::drop_unfinished_clones(&server, &placement.db_name, placement.tenant_id)
        .await
        .map_err(odoo_error)?;
    saas_odoo::delete_tenant(&server, &placement.db_name, None)
        .await
        .map_err(odoo_error)?;
    Ok(())
}

/// Cleans up after tenant `tenant_id`'s provisioning if the tenant is still
/// `failed`. The tenant row stays locked meanwhile, so a retry (which moves
/// the tenant back to `provisioning` under the same lock) waits until the
/// cleanup is done and never sees its fresh clone dropped.
pub(crate) async fn clean(pool: &PgPool, tenant_id: Uuid) -> Result<bool, HandlerError> {
    let mut tx = pool.begin().await?;
    let failed: Option<String> = sqlx::query_scalar(
        "SELECT state FROM tenants WHERE id = $1 AND state = 'failed' FOR UPDATE",
    )
    .bind(tenant_id)
    .fetch_optional(&mut *tx)
    .await?;
    if failed.is_none() {
        return Ok(false);
    }
    let placement = servers::placement(pool, tenant_id).await?;
    if placement.server.is_some() {
        remove_tenant_data(&placement).await?;
    }
    sqlx::query("UPDATE tenants SET provision_cleaned_at = now() WHERE id = $1")
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Failed tenants not cleaned since they failed (a provision failed for
/// good, or was cancelled): cleaned one by one, a handful per pass.
pub(crate) async fn sweep(pool: &PgPool) -> Result<usize, HandlerError> {
    let tenants: Vec<Uuid> = sqlx::query_scalar(
        "SELECT t.id FROM tenants t
         WHERE t.state = 'failed'
           AND (t.provision_cleaned_at IS NULL OR t.provision_cleaned_at < t.updated_at)
           AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.tenant_id = t.id
                           AND o.state IN ('queued', 'running'))
         ORDER BY t.updated_at LIMIT 20",
    )
    .fetch_all(pool)
    .await?;
    let mut cleaned = 0;
    for tenant in tenants {
        match clean(pool, tenant).await {
            Ok(true) => cleaned += 1,
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(%tenant, error = %Chain(&err), "cleaning a failed provision failed")
            }
        }
    }
    Ok(cleaned)
}
