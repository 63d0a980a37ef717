//! Odoo servers: where tenants are placed, with their capacity and the
//! templates the worker found on them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ServerRow {
    pub id: Uuid,
    pub name: String,
    pub public_url: String,
    pub internal_url: String,
    /// The cluster's URL with any password replaced by `***`.
    #[sqlx(skip)]
    pub pg_url: String,
    #[serde(skip)]
    pub pg_url_raw: String,
    pub odoo_db_role: String,
    pub filestore_root: String,
    pub capacity: i32,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub tenant_count: i64,
    /// When the worker last listed the server's templates: its last sign of life.
    pub templates_seen_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Template {
    pub name: String,
    pub size_bytes: i64,
    pub modules: Vec<String>,
    pub seen_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerInput {
    pub name: String,
    pub public_url: String,
    pub internal_url: String,
    pub pg_url: String,
    pub odoo_db_role: String,
    pub filestore_root: String,
    pub capacity: i32,
    pub active: bool,
}

const COLUMNS: &str = "s.id, s.name, s.public_url, s.internal_url, s.pg_url AS pg_url_raw, s.odoo_db_role, \
    s.filestore_root, s.capacity, s.active, s.created_at, \
    (SELECT count(*) FROM tenants t WHERE t.server_id = s.id AND t.state <> 'deleted') AS tenant_count, \
    (SELECT max(seen_at) FROM server_templates st WHERE st.server_id = s.id) AS templates_seen_at";

fn redacted(mut row: ServerRow) -> ServerRow {
    row.pg_url = saas_core::config::redact_url(&row.pg_url_raw);
    row
}

pub async fn list(pool: &PgPool) -> Result<Vec<ServerRow>, sqlx::Error> {
    let rows: Vec<ServerRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM servers s ORDER BY s.name"))
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(redacted).collect())
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<ServerRow>, sqlx::Error> {
    let row: Option<ServerRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM servers s WHERE s.id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(redacted))
}

pub async fn templates(pool: &PgPool, id: Uuid) -> Result<Vec<Template>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, size_bytes, modules, seen_at FROM server_templates WHERE server_id = $1 ORDER BY name",
    )
    .bind(id)
    .fetch_all(pool)
    .await
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("a server with this name exists")]
    NameTaken,
    #[error("the server holds {0} tenant(s); move or delete them first")]
    InUse(i64),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Inserts (`id` None) or replaces a server; `Ok(None)` when `id` is unknown.
/// An empty `pg_url` on update keeps the stored one (it is never shown).
pub async fn save(
    conn: &mut PgConnection,
    id: Option<Uuid>,
    server: &ServerInput,
) -> Result<Option<Uuid>, ServerError> {
    let sql = match id {
        None => {
            "INSERT INTO servers (id, name, public_url, internal_url, pg_url, odoo_db_role, filestore_root, capacity, active)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"
        }
        Some(_) => {
            "UPDATE servers SET name = $2, public_url = $3, internal_url = $4,
                pg_url = CASE WHEN $5 = '' THEN pg_url ELSE $5 END, odoo_db_role = $6,
                filestore_root = $7, capacity = $8, active = $9
             WHERE id = $1 RETURNING id"
        }
    };
    let saved = sqlx::query_scalar::<_, Uuid>(sql)
        .bind(id.unwrap_or_else(Uuid::new_v4))
        .bind(&server.name)
        .bind(&server.public_url)
        .bind(&server.internal_url)
        .bind(&server.pg_url)
        .bind(&server.odoo_db_role)
        .bind(&server.filestore_root)
        .bind(server.capacity)
        .bind(server.active)
        .fetch_optional(conn)
        .await;
    super::saved(saved, ServerError::NameTaken)
}

/// Deletes a server no tenant is on (deleted tenants included); false when
/// unknown.
pub async fn delete(conn: &mut PgConnection, id: Uuid) -> Result<bool, ServerError> {
    super::delete_unused(conn, "servers", "server_id", id, ServerError::InUse).await
}
