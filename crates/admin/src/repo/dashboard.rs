//! Counts for the dashboard.

use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, Serialize)]
pub struct Counts {
    /// Tenants by state, every state listed.
    pub tenants_by_state: Vec<(String, i64)>,
    /// Operations created in the last 24 hours, by state.
    pub operations_24h: Vec<(String, i64)>,
    pub queue_depth: i64,
    pub failed_operations: i64,
}

pub async fn counts(pool: &PgPool) -> Result<Counts, sqlx::Error> {
    let tenants: Vec<(String, i64)> = sqlx::query_as(
        "SELECT s.state, count(t.id) FROM
            unnest(ARRAY['pending','provisioning','active','suspended','failed','deleting','deleted']) AS s(state)
            LEFT JOIN tenants t ON t.state = s.state GROUP BY s.state ORDER BY min(array_position(
            ARRAY['pending','provisioning','active','suspended','failed','deleting','deleted'], s.state))",
    )
    .fetch_all(pool)
    .await?;
    let operations: Vec<(String, i64)> = sqlx::query_as(
        "SELECT s.state, count(o.id) FROM
            unnest(ARRAY['queued','running','succeeded','failed','cancelled']) AS s(state)
            LEFT JOIN operations o ON o.state = s.state AND o.created_at > now() - interval '24 hours'
            GROUP BY s.state ORDER BY min(array_position(
            ARRAY['queued','running','succeeded','failed','cancelled'], s.state))",
    )
    .fetch_all(pool)
    .await?;
    let queue_depth = saas_core::ops::store::queue_depth(pool).await?;
    let failed_operations: i64 =
        sqlx::query_scalar("SELECT count(*) FROM operations WHERE state = 'failed'")
            .fetch_one(pool)
            .await?;
    Ok(Counts {
        tenants_by_state: tenants,
        operations_24h: operations,
        queue_depth,
        failed_operations,
    })
}
