//! The tenant marker: `COMMENT ON DATABASE` naming the tenant a database was
//! made for. It is written by the platform's own session before the database
//! gets its final name (provisioning's clone, a restore's new database), and
//! read from the catalog without connecting to the database, so nothing a
//! customer put inside the database is ever run to decide whose it is.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Result;
use crate::ident::quoted;

const PREFIX: &str = "odoo-saas tenant ";

/// The comment text that marks a database as tenant `tenant_id`'s.
pub fn tenant_marker(tenant_id: Uuid) -> String {
    format!("{PREFIX}{tenant_id}")
}

/// `COMMENT ON DATABASE db IS '<marker of tenant_id>'`.
pub(crate) async fn write_marker(
    admin: &mut PgConnection,
    db: &str,
    tenant_id: Uuid,
) -> Result<()> {
    // The marker holds only a prefix and a UUID: nothing to escape.
    let sql = format!(
        "COMMENT ON DATABASE {} IS '{}'",
        quoted(db),
        tenant_marker(tenant_id)
    );
    sqlx::query(&sql).execute(admin).await?;
    Ok(())
}

/// Whose database `db` is: `None` when it does not exist, `Some(None)` when
/// it exists without a readable marker, `Some(Some(id))` when it carries
/// tenant `id`'s marker.
pub(crate) async fn read_marker(
    admin: &mut PgConnection,
    db: &str,
) -> Result<Option<Option<Uuid>>> {
    let row: Option<Option<String>> = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
    )
    .bind(db)
    .fetch_optional(admin)
    .await?;
    Ok(row.map(|comment| {
        comment
            .as_deref()
            .and_then(|c| c.strip_prefix(PREFIX))
            .and_then(|id| id.parse().ok())
    }))
}

/// Whether `db` exists and carries tenant `tenant_id`'s marker.
pub(crate) async fn is_marked_for(
    admin: &mut PgConnection,
    db: &str,
    tenant_id: Uuid,
) -> Result<bool> {
    Ok(read_marker(admin, db).await? == Some(Some(tenant_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_names_the_tenant() {
        let id = Uuid::new_v4();
        assert_eq!(tenant_marker(id), format!("odoo-saas tenant {id}"));
    }
}
