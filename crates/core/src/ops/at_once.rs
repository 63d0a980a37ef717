//! [`super::request_change`] in one statement: the tenant's row locked and
//! checked, its state moved, the operation and its audit entry inserted, in
//! a single round trip instead of a transaction of five. Only the common
//! case is done here; a request that finds an operation of its kind already
//! queued goes the transactional way, which returns that one.

use serde_json::Value;
use sqlx::{FromRow as _, PgPool, Row as _};
use uuid::Uuid;

use super::model::{COLUMNS, Operation, OperationKind, public_args};
use super::{Actor, precondition};

/// What the statement found.
pub(super) enum AtOnce {
    Created(Box<Operation>),
    NoTenant,
    /// The tenant's state, which does not allow the kind.
    NotAllowed(String),
    /// An operation of the kind is already queued for the tenant (the
    /// tenant's state was moved all the same, as the transactional path
    /// does).
    AlreadyQueued,
}

pub(super) async fn request_change_at_once(
    pool: &PgPool,
    tenant_id: Uuid,
    kind: OperationKind,
    args: &Value,
    actor: &Actor,
) -> Result<AtOnce, sqlx::Error> {
    let (allowed, on_request) = precondition(kind);
    let allowed: Vec<&str> = allowed.iter().map(|state| state.as_str()).collect();
    let on_request = on_request.map(|state| state.as_str());
    // Data-modifying CTEs all run, on the snapshot the statement started
    // with; `t` holds the tenant's row lock until the statement commits.
    let row = sqlx::query(&format!(
        "WITH t AS (SELECT id, state FROM tenants WHERE id = $1 FOR UPDATE),
              ok AS (SELECT id, state FROM t WHERE state = ANY($2) OR state = $3),
              moved AS (
                  UPDATE tenants SET state = $3, updated_at = now() FROM ok
                  WHERE tenants.id = ok.id AND $3::text IS NOT NULL AND ok.state <> $3
                  RETURNING tenants.id),
              ins AS (
                  INSERT INTO operations (id, tenant_id, kind, args, state, max_attempts, requested_by)
                  SELECT $4, ok.id, $5, $6, 'queued', $7, $8 FROM ok
                  ON CONFLICT (tenant_id, kind) WHERE state = 'queued' DO NOTHING
                  RETURNING {COLUMNS}),
              audited AS (
                  INSERT INTO audit_log (actor, action, target, address, details)
                  SELECT $8, $9, $10, $11::inet, jsonb_build_object('operation', ins.id, 'args', $12::jsonb)
                  FROM ins
                  RETURNING id)
         SELECT t.state AS tenant_state, (SELECT count(*) FROM moved) AS moved,
                (SELECT count(*) FROM audited) AS audited, ins.*
         FROM t LEFT JOIN ins ON true"
    ))
    .bind(tenant_id)
    .bind(&allowed)
    .bind(on_request)
    .bind(Uuid::new_v4())
    .bind(kind.as_str())
    .bind(args)
    .bind(kind.max_attempts())
    .bind(&actor.name)
    .bind(format!("tenant.{kind}"))
    .bind(format!("tenant:{tenant_id}"))
    .bind(actor.address.map(|address| address.to_string()))
    .bind(public_args(args))
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(AtOnce::NoTenant);
    };
    let state: String = row.try_get("tenant_state")?;
    let allowed_here = allowed.contains(&state.as_str()) || on_request == Some(state.as_str());
    if !allowed_here {
        return Ok(AtOnce::NotAllowed(state));
    }
    let created: Option<Uuid> = row.try_get("id")?;
    if created.is_none() {
        return Ok(AtOnce::AlreadyQueued);
    }
    Ok(AtOnce::Created(Box::new(Operation::from_row(&row)?)))
}
