//! Tenants in the platform database: creation (validation, plan limits,
//! placement, the provision operation) and reads shared by admin and portal.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit;
use crate::domain::{LimitExceeded, Subdomain, SubdomainError, TenantState};
use crate::ops::{self, Actor, Operation, OperationKind, OpsQueue, RequestError};
use crate::sealing::{Purpose, SealingKey};

/// One row of `tenants`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub subdomain: String,
    pub customer_id: Uuid,
    pub plan_id: Uuid,
    pub server_id: Option<Uuid>,
    pub state: String,
    pub db_name: String,
    pub suspend_reason: Option<String>,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub suspended_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub usage_db_bytes: i64,
    pub usage_filestore_bytes: i64,
    pub usage_users: i32,
    pub usage_collected_at: Option<DateTime<Utc>>,
}

impl Tenant {
    pub fn state(&self) -> Option<TenantState> {
        self.state.parse().ok()
    }
}

pub const COLUMNS: &str = "id, subdomain, customer_id, plan_id, server_id, state, db_name, suspend_reason, \
     trial_ends_at, created_at, updated_at, suspended_at, deleted_at, usage_db_bytes, usage_filestore_bytes, \
     usage_users, usage_collected_at";

/// What creating a tenant needs.
#[derive(Debug, Clone)]
pub struct NewTenant {
    pub customer_id: Uuid,
    pub plan_id: Uuid,
    pub subdomain: String,
    /// The Odoo admin password the customer chose (its policy already
    /// checked). It is stored only sealed with the provision operation and
    /// hashed by the worker; the sealed copy goes when the provision ends.
    pub admin_password: secrecy::SecretString,
}

/// Why a tenant was not created; `field()` names the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("subdomain {0}")]
    Subdomain(#[from] SubdomainError),
    #[error("subdomain is already taken")]
    SubdomainTaken,
    #[error("plan not found")]
    PlanNotFound,
    #[error("plan is not available")]
    PlanInactive,
    #[error("customer not found")]
    CustomerNotFound,
    #[error("customer account is disabled")]
    CustomerDisabled,
    #[error("{0}")]
    Limit(LimitExceeded),
    #[error("no Odoo server can take it: {0}")]
    NoCapacity(String),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl CreateError {
    /// The request field the error is about, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            CreateError::Subdomain(_) | CreateError::SubdomainTaken => Some("subdomain"),
            CreateError::PlanNotFound | CreateError::PlanInactive | CreateError::Limit(_) => {
                Some("plan")
            }
            CreateError::CustomerNotFound | CreateError::CustomerDisabled => Some("customer"),
            _ => None,
        }
    }
}

/// Creates a tenant in state `pending`, places it on a server, and requests
/// its provision operation with the admin password sealed under `key`, in
/// one transaction; then pushes the operation. Nothing here hashes: the
/// request costs a few queries.
#[tracing::instrument(skip_all)]
pub async fn create(
    pool: &PgPool,
    queue: Option<&OpsQueue>,
    key: &SealingKey,
    new: &NewTenant,
    actor: &Actor,
) -> Result<(Tenant, Operation), CreateError> {
    let subdomain = Subdomain::parse(&new.subdomain)?;
    let mut tx = pool.begin().await?;
    // Locking the customer serialises their concurrent creations, so the
    // instance limit cannot be overrun by a race.
    let customer: Option<(String, String, bool)> = sqlx::query_as(
        "SELECT email::text, company_name, disabled FROM customers WHERE id = $1 FOR UPDATE",
    )
    .bind(new.customer_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (email, company_name, disabled) = customer.ok_or(CreateError::CustomerNotFound)?;
    if disabled {
        return Err(CreateError::CustomerDisabled);
    }
    let plan: Option<(String, i32, i32, bool)> = sqlx::query_as(
        "SELECT template, max_instances, trial_days, active FROM plans WHERE id = $1",
    )
    .bind(new.plan_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (template, max_instances, trial_days, active) = plan.ok_or(CreateError::PlanNotFound)?;
    if !active {
        return Err(CreateError::PlanInactive);
    }
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tenants WHERE customer_id = $1 AND state <> 'deleted'",
    )
    .bind(new.customer_id)
    .fetch_one(&mut *tx)
    .await?;
    if live >= i64::from(max_instances) {
        return Err(CreateError::Limit(LimitExceeded::Instances {
            used: live,
            allowed: i64::from(max_instances),
        }));
    }
    let server_id = place(&mut tx, &template).await?;
    let id = Uuid::new_v4();
    let trial_ends_at =
        (trial_days > 0).then(|| Utc::now() + chrono::Duration::days(i64::from(trial_days)));
    let inserted = sqlx::query_as::<_, Tenant>(&format!(
        "INSERT INTO tenants (id, subdomain, customer_id, plan_id, server_id, state, db_name, trial_ends_at)
         VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(subdomain.as_str())
    .bind(new.customer_id)
    .bind(new.plan_id)
    .bind(server_id)
    .bind(subdomain.database_name())
    .bind(trial_ends_at)
    .fetch_one(&mut *tx)
    .await;
    let tenant = match inserted {
        Ok(tenant) => tenant,
        Err(err) if is_unique(&err) => return Err(CreateError::SubdomainTaken),
        Err(err) => return Err(err.into()),
    };
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: &actor.name,
            action: "tenant.create",
            target: Some(format!("tenant:{id}")),
            address: actor.address,
            details: serde_json::json!({
                "subdomain": subdomain.as_str(),
                "customer": new.customer_id,
                "plan": new.plan_id,
                "server": server_id,
            }),
        },
    )
    .await?;
    let args = serde_json::json!({
        "admin_login": email,
        "company_name": company_name,
    });
    let secret = ops::Secret {
        key,
        purpose: Purpose::OdooAdminPassword,
        value: &new.admin_password,
    };
    let requested = ops::request_change_with_secret_in(
        &mut tx,
        id,
        OperationKind::Provision,
        args,
        actor,
        &secret,
    )
    .await?;
    tx.commit().await?;
    ops::push_after_commit(queue, requested.operation.id).await;
    let tenant = Tenant {
        state: TenantState::Provisioning.as_str().to_owned(),
        ..tenant
    };
    Ok((tenant, requested.operation))
}

/// The active server with the most free capacity that holds `tpl_<template>`.
async fn place(tx: &mut sqlx::PgConnection, template: &str) -> Result<Uuid, CreateError> {
    let candidates: Vec<(Uuid, String, i64, bool)> = sqlx::query_as(
        "SELECT s.id, s.name,
                s.capacity - (SELECT count(*) FROM tenants t WHERE t.server_id = s.id AND t.state <> 'deleted') AS free,
                EXISTS (SELECT 1 FROM server_templates st WHERE st.server_id = s.id AND st.name = 'tpl_' || $1)
         FROM servers s WHERE s.active
         ORDER BY 3 DESC, s.name
         FOR UPDATE OF s",
    )
    .bind(template)
    .fetch_all(&mut *tx)
    .await?;
    if candidates.is_empty() {
        return Err(CreateError::NoCapacity(
            "no active Odoo server is registered".to_owned(),
        ));
    }
    let with_template: Vec<_> = candidates.iter().filter(|c| c.3).collect();
    if with_template.is_empty() {
        return Err(CreateError::NoCapacity(format!(
            "no active server has the template tpl_{template}"
        )));
    }
    with_template
        .iter()
        .find(|c| c.2 > 0)
        .map(|c| c.0)
        .ok_or_else(|| CreateError::NoCapacity(format!("every server with tpl_{template} is full")))
}

fn is_unique(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

/// Whether a subdomain can be taken right now (for live availability checks).
pub async fn subdomain_available(
    pool: &PgPool,
    raw: &str,
) -> Result<Result<(), CreateError>, sqlx::Error> {
    let subdomain = match Subdomain::parse(raw) {
        Ok(subdomain) => subdomain,
        Err(err) => return Ok(Err(err.into())),
    };
    let taken: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM tenants WHERE subdomain = $1 AND state <> 'deleted')",
    )
    .bind(subdomain.as_str())
    .fetch_one(pool)
    .await?;
    Ok(if taken {
        Err(CreateError::SubdomainTaken)
    } else {
        Ok(())
    })
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Tenant>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM tenants WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}
