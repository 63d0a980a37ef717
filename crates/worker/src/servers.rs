//! Odoo servers as the worker sees them: where a tenant lives, the default
//! server of a single-host stack, the templates each server holds, and the
//! nginx routing map.

use std::path::PathBuf;

use saas_core::config::DefaultServer;
use saas_odoo::{OdooServer, Route, RouteTarget};
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use url::Url;
use uuid::Uuid;

use crate::handlers::HandlerError;
use crate::platform::{Inner, error_chain, odoo_error};

/// A server row of the platform database.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ServerRow {
    pub id: Uuid,
    pub name: String,
    pub internal_url: String,
    pub pg_url: String,
    pub odoo_db_role: String,
    pub filestore_root: String,
}

impl ServerRow {
    pub fn connect(&self) -> Result<OdooServer, HandlerError> {
        let url = Url::parse(&self.internal_url).map_err(|err| {
            HandlerError::permanent(format!("server {}: internal URL: {err}", self.name))
        })?;
        OdooServer::new(
            SecretString::from(self.pg_url.clone()),
            self.odoo_db_role.clone(),
            PathBuf::from(&self.filestore_root),
            url,
        )
        .map_err(odoo_error)
    }
}

/// `host:port` of a server's HTTP port (from its internal URL), for the routing map.
fn upstream_of(internal_url: &str) -> Option<String> {
    let url = Url::parse(internal_url).ok()?;
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

const SERVER_COLUMNS: &str =
    "s.id, s.name, s.internal_url, s.pg_url, s.odoo_db_role, s.filestore_root";

/// Everything a handler needs to know about where a tenant lives.
#[derive(Debug, Clone)]
pub struct TenantPlacement {
    pub tenant_id: Uuid,
    pub subdomain: String,
    pub db_name: String,
    pub template: String,
    pub max_backups: i32,
    /// The plan's storage: what a restore may write.
    pub max_storage_mb: i32,
    pub server: Option<ServerRow>,
}

impl TenantPlacement {
    pub fn server(&self) -> Result<OdooServer, HandlerError> {
        self.server
            .as_ref()
            .ok_or_else(|| HandlerError::permanent("the tenant is not placed on any server"))?
            .connect()
    }
}

pub async fn placement(pool: &PgPool, tenant_id: Uuid) -> Result<TenantPlacement, HandlerError> {
    let row: Option<(String, String, String, i32, i32, Option<Uuid>)> = sqlx::query_as(
        "SELECT t.subdomain, t.db_name, p.template, p.max_backups, p.max_storage_mb, t.server_id
         FROM tenants t JOIN plans p ON p.id = t.plan_id WHERE t.id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(pool)
    .await?;
    let (subdomain, db_name, template, max_backups, max_storage_mb, server_id) =
        row.ok_or_else(|| HandlerError::permanent("the tenant no longer exists"))?;
    let server = match server_id {
        Some(id) => {
            sqlx::query_as::<_, ServerRow>(&format!(
                "SELECT {SERVER_COLUMNS} FROM servers s WHERE s.id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        }
        None => None,
    };
    Ok(TenantPlacement {
        tenant_id,
        subdomain,
        db_name,
        template,
        max_backups,
        max_storage_mb,
        server,
    })
}

/// Registers (or updates) the stack's own Odoo server as `default`; its
/// cluster is the platform database's server.
pub async fn ensure_default_server(
    pool: &PgPool,
    database_url: &SecretString,
    server: &DefaultServer,
) -> Result<(), sqlx::Error> {
    let mut pg_url = Url::parse(database_url.expose_secret())
        .map_err(|err| sqlx::Error::Configuration(err.to_string().into()))?;
    pg_url.set_path("/postgres");
    let internal = format!("http://{}", server.upstream);
    sqlx::query(
        "INSERT INTO servers (id, name, public_url, internal_url, pg_url, odoo_db_role, filestore_root, capacity)
         VALUES ($1, 'default', $2, $2, $3, $4, $5, $6)
         ON CONFLICT (name) DO UPDATE SET internal_url = EXCLUDED.internal_url, pg_url = EXCLUDED.pg_url,
             odoo_db_role = EXCLUDED.odoo_db_role, filestore_root = EXCLUDED.filestore_root,
             capacity = EXCLUDED.capacity",
    )
    .bind(Uuid::new_v4())
    .bind(&internal)
    .bind(pg_url.as_str())
    .bind(&server.odoo_db_role)
    .bind(&server.filestore_root)
    .bind(server.capacity)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn active_servers(pool: &PgPool) -> Result<Vec<ServerRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {SERVER_COLUMNS} FROM servers s WHERE s.active ORDER BY s.name"
    ))
    .fetch_all(pool)
    .await
}

/// Drops the throw-away guest roles a crashed worker left on every active
/// server (a guest runs a customer's dump or the platform's reads inside a
/// tenant database and is dropped when that work ends).
pub async fn drop_leftover_guests(pool: &PgPool) -> anyhow::Result<usize> {
    let mut dropped = 0;
    for row in active_servers(pool).await? {
        let result = match row.connect() {
            Ok(server) => saas_odoo::drop_leftover_guests(&server)
                .await
                .map_err(|err| error_chain(&err)),
            Err(err) => Err(err.message),
        };
        match result {
            Ok(n) => dropped += n,
            Err(err) => {
                tracing::warn!(server = %row.name, error = %err, "cannot drop leftover guests")
            }
        }
    }
    Ok(dropped)
}

/// Records the `tpl_*` templates found on every active server; placement
/// only picks servers holding the plan's template.
pub async fn refresh_templates(pool: &PgPool) -> anyhow::Result<usize> {
    let rows = active_servers(pool).await?;
    let mut found = 0;
    for row in rows {
        let listed = match row.connect() {
            Ok(server) => saas_odoo::list_templates(&server)
                .await
                .map_err(|err| error_chain(&err)),
            Err(err) => Err(err.message),
        };
        let templates = match listed {
            Ok(templates) => templates,
            Err(err) => {
                tracing::warn!(server = %row.name, error = %err, "cannot list templates");
                continue;
            }
        };
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM server_templates WHERE server_id = $1")
            .bind(row.id)
            .execute(&mut *tx)
            .await?;
        for template in &templates {
            sqlx::query(
                "INSERT INTO server_templates (server_id, name, size_bytes, modules) VALUES ($1, $2, $3, $4)",
            )
            .bind(row.id)
            .bind(&template.name)
            .bind(template.size_bytes)
            .bind(&template.modules)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        found += templates.len();
    }
    Ok(found)
}

/// Rewrites the nginx map from the tenants table: active tenants to their
/// server's upstream, suspended ones to `suspended`.
pub(crate) async fn write_routing_map(inner: &Inner) -> Result<(), HandlerError> {
    write_routing_map_from(&inner.pool, &inner.settings).await
}

/// Writes the tenants' routing map and the custom domains' maps beside it.
pub async fn write_routing_map_from(
    pool: &PgPool,
    settings: &saas_core::config::DataPlaneSettings,
) -> Result<(), HandlerError> {
    write_tenant_map(pool, &settings.routing_map_path).await?;
    crate::domains::write_domain_maps(pool, &settings.domains).await
}

async fn write_tenant_map(pool: &PgPool, path: &std::path::Path) -> Result<(), HandlerError> {
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT t.subdomain, t.state, s.internal_url FROM tenants t LEFT JOIN servers s ON s.id = t.server_id
         WHERE t.state IN ('active', 'suspended') ORDER BY t.subdomain",
    )
    .fetch_all(pool)
    .await?;
    let routes: Vec<Route> = rows
        .into_iter()
        .filter_map(|(subdomain, state, internal_url)| {
            let target = if state == "suspended" {
                RouteTarget::Suspended
            } else {
                RouteTarget::Upstream(upstream_of(internal_url.as_deref()?)?)
            };
            Some(Route { subdomain, target })
        })
        .collect();
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|err| HandlerError::transient(format!("{}: {err}", dir.display())))?;
    }
    saas_odoo::write_routing_map(path, &routes)
        .await
        .map_err(odoo_error)
}
