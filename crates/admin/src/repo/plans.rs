//! Plans: what a tenant may use and what it costs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PlanRow {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub max_users: i32,
    pub max_storage_mb: i32,
    pub max_backups: i32,
    pub max_instances: i32,
    /// Customers' own domains per tenant.
    pub max_domains: i32,
    pub template: String,
    pub modules: Vec<String>,
    pub trial_days: i32,
    pub grace_days: i32,
    pub backup_hour_utc: i32,
    pub price_cents: i64,
    pub currency: String,
    pub active: bool,
    /// Made by the worker for a template of `ODOO_TEMPLATES` (first run).
    pub created_automatically: bool,
    pub created_at: DateTime<Utc>,
    /// Tenants (not deleted) on the plan.
    pub tenant_count: i64,
}

const COLUMNS: &str = "p.id, p.code, p.name, p.max_users, p.max_storage_mb, p.max_backups, p.max_instances, \
    p.max_domains, p.template, p.modules, p.trial_days, p.grace_days, p.backup_hour_utc, p.price_cents, p.currency, p.active, \
    p.created_automatically, p.created_at, (SELECT count(*) FROM tenants t WHERE t.plan_id = p.id AND t.state <> 'deleted') AS tenant_count";

/// A plan as created or replaced; validated by the caller.
#[derive(Debug, Clone, Deserialize)]
pub struct PlanInput {
    pub code: String,
    pub name: String,
    pub max_users: i32,
    pub max_storage_mb: i32,
    pub max_backups: i32,
    pub max_instances: i32,
    pub max_domains: i32,
    pub template: String,
    pub modules: Vec<String>,
    pub trial_days: i32,
    pub grace_days: i32,
    pub backup_hour_utc: i32,
    pub price_cents: i64,
    pub currency: String,
    pub active: bool,
}

pub async fn list(pool: &PgPool) -> Result<Vec<PlanRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM plans p ORDER BY p.active DESC, p.price_cents, p.code"
    ))
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<PlanRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM plans p WHERE p.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn by_code(pool: &PgPool, code: &str) -> Result<Option<PlanRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM plans p WHERE p.code = $1"))
        .bind(code)
        .fetch_optional(pool)
        .await
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("a plan with this code exists")]
    CodeTaken,
    #[error("the plan is used by {0} tenant(s); move them first or mark it inactive")]
    InUse(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Inserts (`id` None) or replaces a plan; `Ok(None)` when `id` is unknown.
pub async fn save(
    conn: &mut PgConnection,
    id: Option<Uuid>,
    plan: &PlanInput,
) -> Result<Option<Uuid>, PlanError> {
    let sql = match id {
        None => {
            "INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, max_instances, template,
                modules, trial_days, grace_days, backup_hour_utc, price_cents, currency, active, max_domains)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id"
        }
        Some(_) => {
            "UPDATE plans SET code = $2, name = $3, max_users = $4, max_storage_mb = $5, max_backups = $6,
                max_instances = $7, template = $8, modules = $9, trial_days = $10, grace_days = $11,
                backup_hour_utc = $12, price_cents = $13, currency = $14, active = $15, max_domains = $16
             WHERE id = $1 RETURNING id"
        }
    };
    let saved = sqlx::query_scalar::<_, Uuid>(sql)
        .bind(id.unwrap_or_else(Uuid::new_v4))
        .bind(&plan.code)
        .bind(&plan.name)
        .bind(plan.max_users)
        .bind(plan.max_storage_mb)
        .bind(plan.max_backups)
        .bind(plan.max_instances)
        .bind(&plan.template)
        .bind(&plan.modules)
        .bind(plan.trial_days)
        .bind(plan.grace_days)
        .bind(plan.backup_hour_utc)
        .bind(plan.price_cents)
        .bind(&plan.currency)
        .bind(plan.active)
        .bind(plan.max_domains)
        .fetch_optional(conn)
        .await;
    super::saved(saved, PlanError::CodeTaken)
}

/// The templates a plan can use: those the worker found on active servers,
/// as plan templates (`basic` for `tpl_basic`), sorted.
pub async fn available_templates(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT substr(st.name, 5) FROM server_templates st JOIN servers s ON s.id = st.server_id
         WHERE s.active AND st.name LIKE 'tpl\\_%' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
}

/// Deletes a plan no tenant uses (deleted tenants included: they keep
/// their history); false when unknown.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, PlanError> {
    super::delete_unused(conn, "plans", "plan_id", id, PlanError::InUse).await
}
