//! Template databases (`tpl_<name>`) on a server, and where a new tenant goes.
//!
//! A template is sealed once built (`odoo/seal-template.sql`): closed to
//! connections, so everything the platform knows about it comes from the
//! catalog and from the JSON in its `COMMENT ON DATABASE`.

use std::collections::BTreeMap;

use sqlx::{PgConnection, Row as _};

use crate::error::{OdooError, Result};
use crate::guest::read_as_guest;
use crate::server::OdooServer;
use crate::template_meta::TemplateMeta;

/// Prefix every template database name carries.
pub const TEMPLATE_PREFIX: &str = "tpl_";

/// Suffix of a template Odoo is still building (never listed, never cloned).
pub const BUILDING_SUFFIX: &str = "__building";

/// A sealed template database found on a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateInfo {
    pub name: String,
    pub size_bytes: i64,
    /// The Odoo series it was built with, e.g. `18.0`, when its comment says.
    pub odoo_version: Option<String>,
    /// Names of the installed modules, sorted.
    pub modules: Vec<String>,
    /// Installed module -> its version (`18.0.1.3`).
    pub module_versions: BTreeMap<String, String>,
}

/// Whether `name` is a finished template's name: `tpl_<name>` with `<name>` as
/// `odoo/build-templates.sh` accepts it (`[a-z0-9_]{1,40}`), not `__building`.
pub fn is_template_name(name: &str) -> bool {
    name.strip_prefix(TEMPLATE_PREFIX).is_some_and(|plan| {
        (1..=40).contains(&plan.len())
            && plan
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !name.ends_with(BUILDING_SUFFIX)
    })
}

/// Lists the sealed templates of a server: databases owned by the server's Odoo
/// role, marked `IS_TEMPLATE`, closed to connections and named `tpl_<name>`,
/// with their size and what their comment records. Nothing connects to them.
///
/// A template without a readable comment is skipped with a warning: it was not
/// sealed by `seal-template.sql` (an earlier build, or made by hand), so it may
/// still hold a known password; `odoo/build-templates.sh` seals it on its next
/// run. One that still accepts connections is skipped for the same reason.
#[tracing::instrument(skip_all)]
pub async fn list_templates(server: &OdooServer) -> Result<Vec<TemplateInfo>> {
    let mut admin = server.connect_admin().await?;
    // pg_database_size needs no connection to the database itself.
    let rows = sqlx::query(
        "SELECT d.datname::text AS name, pg_database_size(d.oid) AS size, \
                d.datallowconn AS open, shobj_description(d.oid, 'pg_database') AS comment \
         FROM pg_database d \
         WHERE d.datistemplate AND d.datdba = (SELECT oid FROM pg_roles WHERE rolname = $1) \
           AND d.datname LIKE 'tpl\\_%' \
         ORDER BY d.datname",
    )
    .bind(&server.odoo_db_role)
    .fetch_all(&mut admin)
    .await?;
    let mut templates = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get("name")?;
        if !is_template_name(&name) {
            continue;
        }
        if row.try_get::<bool, _>("open")? {
            tracing::warn!(template = %name, "skipping a template that accepts connections (not sealed)");
            continue;
        }
        let comment: Option<String> = row.try_get("comment")?;
        let Some(meta) = comment.as_deref().and_then(TemplateMeta::parse) else {
            tracing::warn!(template = %name, "skipping a template without a readable comment (not sealed)");
            continue;
        };
        templates.push(TemplateInfo {
            size_bytes: row.try_get("size")?,
            odoo_version: meta.odoo,
            modules: meta.modules.keys().cloned().collect(),
            module_versions: meta.modules,
            name,
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
