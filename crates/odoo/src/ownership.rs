//! Whose database is under a tenant's name, decided from the catalog alone (owner
//! and tenant marker), never by connecting: a customer's view or trigger inside
//! the database would run with the platform's superuser rights.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{OdooError, Result};
use crate::ident::check_db_name;
use crate::marker::read_marker;
use crate::provision::database_owner;
use crate::server::OdooServer;

/// What is found under a tenant's database name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantDatabase {
    /// No database of that name.
    Missing,
    /// Owned by the Odoo role and carrying this tenant's marker: made by
    /// provisioning (or a restore) for this tenant.
    Ours,
    /// Anything else; `reason` says why, for an operator (it names no other
    /// tenant: a customer may read it in the operation's error).
    Foreign { reason: String },
}

impl TenantDatabase {
    /// `Ok(true)` for [`TenantDatabase::Ours`], `Ok(false)` when missing,
    /// [`OdooError::ForeignDatabase`] otherwise.
    pub fn ours_or_missing(self, db: &str) -> Result<bool> {
        match self {
            TenantDatabase::Ours => Ok(true),
            TenantDatabase::Missing => Ok(false),
            TenantDatabase::Foreign { reason } => Err(OdooError::ForeignDatabase {
                db: db.to_owned(),
                reason,
            }),
        }
    }
}

/// Whose database `db` is, as far as tenant `tenant_id` is concerned.
pub async fn tenant_database(
    server: &OdooServer,
    db: &str,
    tenant_id: Uuid,
) -> Result<TenantDatabase> {
    check_db_name(db)?;
    let mut admin = server.connect_admin().await?;
    examine(&mut admin, &server.odoo_db_role, db, tenant_id).await
}

/// Whether database `db` exists, is owned by the Odoo role and carries tenant
/// `tenant_id`'s marker. Reads only the catalog.
pub async fn is_provisioned(server: &OdooServer, db: &str, tenant_id: Uuid) -> Result<bool> {
    Ok(tenant_database(server, db, tenant_id).await? == TenantDatabase::Ours)
}

pub(crate) async fn examine(
    admin: &mut PgConnection,
    role: &str,
    db: &str,
    tenant_id: Uuid,
) -> Result<TenantDatabase> {
    let Some(owner) = database_owner(admin, db).await? else {
        return Ok(TenantDatabase::Missing);
    };
    let Some(marker) = read_marker(admin, db).await? else {
        // Dropped between the two reads.
        return Ok(TenantDatabase::Missing);
    };
    let marked_for_us = marker == Some(tenant_id);
    if marked_for_us && owner == role {
        return Ok(TenantDatabase::Ours);
    }
    if let Some(other) = marker.filter(|id| *id != tenant_id) {
        tracing::warn!(other_tenant = %other, "a database of that name belongs to another tenant");
    }
    let reason = if marked_for_us {
        format!("is marked for this tenant but owned by {owner:?}, not by the Odoo role {role:?}")
    } else {
        let marker = if marker.is_some() {
            "another tenant's"
        } else {
            "none"
        };
        format!("was not created for this tenant (owner {owner:?}, marker: {marker})")
    };
    Ok(TenantDatabase::Foreign { reason })
}
