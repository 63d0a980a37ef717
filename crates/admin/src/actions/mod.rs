//! What operators do, shared by the pages and the JSON API: each action
//! checks the role, validates its input naming the field, and writes its
//! audit entry in the same transaction as the change.

pub mod catalog;
pub mod customers;
pub mod domains;
pub mod operations;
pub mod operators;
pub mod tenants;

use saas_core::audit;
use sqlx::PgConnection;

use crate::auth::CurrentOperator;

/// Records `action` on `target` by `user` in the caller's transaction.
pub async fn record(
    conn: &mut PgConnection,
    user: &CurrentOperator,
    action: &str,
    target: String,
    details: serde_json::Value,
) -> Result<i64, sqlx::Error> {
    audit::record(
        conn,
        &audit::Entry {
            actor: &user.actor().name,
            action,
            target: Some(target),
            address: user.address,
            details,
        },
    )
    .await
}
