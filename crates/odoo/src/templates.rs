//! Template databases (`tpl_<name>`) on a server, and where a new tenant goes.

use sqlx::{PgConnection, Row as _};

use crate::error::{OdooError, Result};
use crate::guest::read_as_guest;
use crate::server::OdooServer;

/// Prefix every template database name carries.
pub const TEMPLATE_PREFIX: &str = "tpl_";

/// A template database found on a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateInfo {
    pub name: String,
    pub size_bytes: i64,
    /// `ALTER DATABASE ... IS_TEMPLATE true` was done (Odoo then never connects to it).
    pub is_template: bool,
    /// Names of the modules in state `installed`, sorted.
    pub modules: Vec<String>,
}

/// Lists the `tpl_*` databases of a server with their size and installed modules.
#[tracing::instrument(skip_all)]
pub async fn list_templates(server: &OdooServer) -> Result<Vec<TemplateInfo>> {
    let mut admin = server.connect_admin().await?;
    let rows = sqlx::query(
        "SELECT datname::text AS name, pg_database_size(oid) AS size, datistemplate \
         FROM pg_database WHERE datname LIKE 'tpl\\_%' AND datallowconn ORDER BY datname",
    )
    .fetch_all(&mut admin)
    .await?;
    let mut templates = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get("name")?;
        if crate::ident::check_db_name(&name).is_err() {
            tracing::warn!("skipping template with an unusable name");
            continue;
        }
        let modules = installed_modules(server, &name).await?;
        templates.push(TemplateInfo {
            size_bytes: row.try_get("size")?,
            is_template: row.try_get("datistemplate")?,
            name,
            modules,
        });
    }
    Ok(templates)
}

/// Installed modules of tenant database `db` with their versions, sorted by
/// name; empty when it has no `ir_module_module` table. The table may be
/// whatever a customer's restored dump made it (a view calling their own
/// function), so a guest that may read only it does the reading.
pub(crate) async fn installed_modules_with_versions(
    server: &OdooServer,
    db: &str,
) -> Result<Vec<(String, String)>> {
    read_as_guest(
        server,
        db,
        &["ir_module_module"],
        "listing installed modules",
        async |conn| modules_with_versions(conn).await,
    )
    .await
}

/// Templates are built by Odoo itself for the platform, never by a customer:
/// the platform's own session reads them.
async fn installed_modules(server: &OdooServer, db: &str) -> Result<Vec<String>> {
    let mut conn = server.connect_db(db).await?;
    Ok(modules_with_versions(&mut conn)
        .await?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

async fn modules_with_versions(conn: &mut PgConnection) -> Result<Vec<(String, String)>> {
    let exists: bool =
        sqlx::query_scalar("SELECT pg_catalog.to_regclass('public.ir_module_module') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    if !exists {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT name::text, latest_version::text FROM ir_module_module \
         WHERE state = 'installed' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, version)| (name, version.unwrap_or_default()))
        .collect())
}

/// What placement needs to know about one server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLoad<Id> {
    pub id: Id,
    pub active: bool,
    /// Maximum number of tenants.
    pub capacity: u32,
    /// Tenants currently placed there (not deleted).
    pub tenants: u32,
    /// Template database names present on the server (`tpl_...`).
    pub templates: Vec<String>,
}

impl<Id> ServerLoad<Id> {
    fn free(&self) -> u32 {
        self.capacity.saturating_sub(self.tenants)
    }
}

/// Why a tenant cannot be placed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("no active server has the template {template:?}")]
    NoServerWithTemplate { template: String },
    #[error("every active server with the template {template:?} is full ({servers} checked)")]
    NoCapacity { template: String, servers: usize },
}

impl From<PlacementError> for OdooError {
    fn from(error: PlacementError) -> Self {
        OdooError::invalid("placement", error.to_string())
    }
}

/// Picks the active server with the most free capacity among those holding
/// `template`; ties go to the earlier server in `servers`.
pub fn choose_server<'a, Id>(
    servers: &'a [ServerLoad<Id>],
    template: &str,
) -> Result<&'a ServerLoad<Id>, PlacementError> {
    let candidates: Vec<&ServerLoad<Id>> = servers
        .iter()
        .filter(|s| s.active && s.templates.iter().any(|t| t == template))
        .collect();
    if candidates.is_empty() {
        return Err(PlacementError::NoServerWithTemplate {
            template: template.to_owned(),
        });
    }
    let mut best: Option<&ServerLoad<Id>> = None;
    for server in candidates.iter().copied().filter(|s| s.free() > 0) {
        if best.is_none_or(|b| server.free() > b.free()) {
            best = Some(server);
        }
    }
    best.ok_or(PlacementError::NoCapacity {
        template: template.to_owned(),
        servers: candidates.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(
        id: u32,
        active: bool,
        capacity: u32,
        tenants: u32,
        templates: &[&str],
    ) -> ServerLoad<u32> {
        ServerLoad {
            id,
            active,
            capacity,
            tenants,
            templates: templates.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn picks_most_free_active_server_with_template() {
        let servers = [
            load(1, true, 10, 9, &["tpl_basic"]),
            load(2, true, 50, 10, &["tpl_basic", "tpl_pro"]),
            load(3, false, 100, 0, &["tpl_basic"]),
            load(4, true, 100, 0, &["tpl_pro"]),
            load(5, true, 45, 5, &["tpl_basic"]),
        ];
        assert_eq!(choose_server(&servers, "tpl_basic").map(|s| s.id), Ok(2));
        assert_eq!(choose_server(&servers, "tpl_pro").map(|s| s.id), Ok(4));
    }

    #[test]
    fn refuses_with_reason_when_full_or_missing() {
        let servers = [
            load(1, true, 10, 10, &["tpl_basic"]),
            load(2, true, 5, 7, &["tpl_basic"]),
            load(3, false, 100, 0, &["tpl_basic", "tpl_pro"]),
        ];
        assert_eq!(
            choose_server(&servers, "tpl_basic").map(|s| s.id),
            Err(PlacementError::NoCapacity {
                template: "tpl_basic".into(),
                servers: 2
            })
        );
        let err = choose_server(&servers, "tpl_pro").map(|s| s.id);
        assert_eq!(
            err,
            Err(PlacementError::NoServerWithTemplate {
                template: "tpl_pro".into()
            })
        );
        assert!(choose_server::<u32>(&[], "tpl_basic").is_err());
    }
}
