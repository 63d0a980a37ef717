//! Reads scoped to one customer, for the portal: another customer's tenant,
//! operation or plan usage is simply not found.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{PlanLimits, Usage};
use crate::ops::Operation;
use crate::tenants::{COLUMNS as TENANT_COLUMNS, Tenant};

/// A plan as customers see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Plan {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub max_users: i32,
    pub max_storage_mb: i32,
    pub max_backups: i32,
    pub max_instances: i32,
    /// Customers' own domains per instance.
    pub max_domains: i32,
    pub trial_days: i32,
    pub grace_days: i32,
    pub price_cents: i64,
    pub currency: String,
    pub active: bool,
}

const PLAN_COLUMNS: &str = "id, code, name, max_users, max_storage_mb, max_backups, max_instances, \
     max_domains, trial_days, grace_days, price_cents, currency, active";

impl Plan {
    pub fn limits(&self) -> PlanLimits {
        PlanLimits {
            max_users: self.max_users,
            max_storage_mb: self.max_storage_mb,
            max_backups: self.max_backups,
            max_instances: self.max_instances,
            max_domains: self.max_domains,
            trial_days: self.trial_days,
        }
    }
}

/// Plans open to new instances: trials first, then by price.
pub async fn active_plans(pool: &PgPool) -> Result<Vec<Plan>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE active
         ORDER BY (trial_days > 0) DESC, price_cents, name"
    ))
    .fetch_all(pool)
    .await
}

/// A plan by id or by code.
pub async fn plan(pool: &PgPool, id_or_code: &str) -> Result<Option<Plan>, sqlx::Error> {
    let id = Uuid::parse_str(id_or_code.trim()).ok();
    sqlx::query_as(&format!(
        "SELECT {PLAN_COLUMNS} FROM plans WHERE id = $1 OR ($1 IS NULL AND code = $2)"
    ))
    .bind(id)
    .bind(id_or_code.trim())
    .fetch_optional(pool)
    .await
}

/// The customer's tenants that are not deleted, newest first.
pub async fn list(pool: &PgPool, customer_id: Uuid) -> Result<Vec<Tenant>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants
         WHERE customer_id = $1 AND state <> 'deleted' ORDER BY created_at DESC, id"
    ))
    .bind(customer_id)
    .fetch_all(pool)
    .await
}

/// The customer's deleted tenants whose final backups are still kept.
pub async fn recently_deleted(
    pool: &PgPool,
    customer_id: Uuid,
) -> Result<Vec<Tenant>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants t
         WHERE customer_id = $1 AND state = 'deleted'
           AND EXISTS (SELECT 1 FROM backups b WHERE b.tenant_id = t.id
                       AND (b.expires_at IS NULL OR b.expires_at > now()))
         ORDER BY deleted_at DESC, id"
    ))
    .bind(customer_id)
    .fetch_all(pool)
    .await
}

/// One of the customer's tenants (deleted ones included, so their final
/// backups stay reachable); `None` for anyone else's.
pub async fn get(
    pool: &PgPool,
    customer_id: Uuid,
    id: Uuid,
) -> Result<Option<Tenant>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1 AND customer_id = $2"
    ))
    .bind(id)
    .bind(customer_id)
    .fetch_optional(pool)
    .await
}

/// How many instances the customer holds (not deleted).
pub async fn live_count(pool: &PgPool, customer_id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM tenants WHERE customer_id = $1 AND state <> 'deleted'")
        .bind(customer_id)
        .fetch_one(pool)
        .await
}

pub fn usage(tenant: &Tenant) -> Usage {
    Usage {
        users: tenant.usage_users,
        db_bytes: tenant.usage_db_bytes,
        filestore_bytes: tenant.usage_filestore_bytes,
    }
}

/// The tenant's operations, newest first.
pub async fn operations(
    pool: &PgPool,
    tenant_id: Uuid,
    limit: i64,
) -> Result<Vec<Operation>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {} FROM operations WHERE tenant_id = $1 ORDER BY created_at DESC, id LIMIT $2",
        crate::ops::model::COLUMNS
    ))
    .bind(tenant_id)
    .bind(limit.clamp(1, 500))
    .fetch_all(pool)
    .await
}

/// An operation on one of the customer's tenants; `None` for anyone else's.
pub async fn operation(
    pool: &PgPool,
    customer_id: Uuid,
    id: Uuid,
) -> Result<Option<Operation>, sqlx::Error> {
    let columns = crate::ops::model::COLUMNS
        .split(", ")
        .map(|c| format!("o.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    sqlx::query_as(&format!(
        "SELECT {columns} FROM operations o JOIN tenants t ON t.id = o.tenant_id
         WHERE o.id = $1 AND t.customer_id = $2"
    ))
    .bind(id)
    .bind(customer_id)
    .fetch_optional(pool)
    .await
}

/// The login of the tenant's Odoo admin user: what its provision set (the
/// customer's email when it was requested), else the customer's email now.
pub async fn odoo_login(pool: &PgPool, tenant_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT coalesce(
             (SELECT o.args->>'admin_login' FROM operations o
              WHERE o.tenant_id = t.id AND o.kind = 'provision'
              ORDER BY o.created_at DESC LIMIT 1),
             c.email::text)
         FROM tenants t JOIN customers c ON c.id = t.customer_id WHERE t.id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(pool)
    .await
}

/// Whole days left in a trial (0 once it ended); `None` outside a trial.
pub fn trial_days_left(trial_ends_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<i64> {
    trial_ends_at.map(|end| ((end - now).num_hours().max(0) + 23) / 24)
}

#[cfg(test)]
mod tests {
    use super::trial_days_left;

    #[test]
    fn trial_days_round_up() {
        let now = chrono::Utc::now();
        assert_eq!(trial_days_left(None, now), None);
        assert_eq!(
            trial_days_left(Some(now + chrono::Duration::hours(25)), now),
            Some(2)
        );
        assert_eq!(
            trial_days_left(Some(now - chrono::Duration::hours(5)), now),
            Some(0)
        );
    }
}
