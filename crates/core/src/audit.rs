//! The audit log: who did what to which target, from where. Written in the
//! same transaction as the change it describes.

use std::net::IpAddr;

use serde_json::Value;
use sqlx::PgConnection;

/// One audit entry.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// `operator:<email>`, `customer:<email>`, `system:<component>`.
    pub actor: &'a str,
    /// A dotted verb such as `tenant.suspend` or `operation.retry`.
    pub action: &'a str,
    /// `tenant:<id>`, `operation:<id>`, ...
    pub target: Option<String>,
    pub address: Option<IpAddr>,
    pub details: Value,
}

#[tracing::instrument(skip_all, fields(action = entry.action))]
pub async fn record(conn: &mut PgConnection, entry: &Entry<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO audit_log (actor, action, target, address, details)
         VALUES ($1, $2, $3, $4::inet, $5) RETURNING id",
    )
    .bind(entry.actor)
    .bind(entry.action)
    .bind(&entry.target)
    .bind(entry.address.map(|a| a.to_string()))
    .bind(&entry.details)
    .fetch_one(conn)
    .await
}
