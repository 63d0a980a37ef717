//! What a restore is for and how far it may go.

use std::time::Duration;

use url::Url;
use uuid::Uuid;

const MIB: u64 = 1024 * 1024;

/// Knobs of [`crate::restore_tenant`]: whose database it becomes and its bounds.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// The tenant the database is restored for: written as the database's
    /// marker (`COMMENT ON DATABASE`) and as its `database.uuid`. A tenant
    /// database carrying another tenant's marker is refused.
    pub tenant_id: Uuid,
    /// The tenant's `web.base.url` (the backup's own is replaced).
    pub base_url: Url,
    /// Most bytes the restore may write: the decompressed dump fed to psql plus
    /// the filestore, and the new database's size plus the filestore.
    pub max_bytes: u64,
    /// What `max_bytes` is, for the customer: the refusal reads "backup is
    /// larger than <limit_label>", e.g. "your plan's storage (1024 MB)".
    pub limit_label: String,
    /// Wall-clock limit of psql's run over the dump.
    pub timeout: Duration,
    /// The Odoo series this server runs (`18.0`); `None` reads it from the
    /// tenant's current database (`base` module version), and skips the
    /// check when there is none.
    pub odoo_version: Option<String>,
}

impl RestoreOptions {
    /// Options for tenant `tenant_id` at `base_url`, with the default bounds.
    pub fn new(tenant_id: Uuid, base_url: Url) -> Self {
        Self {
            tenant_id,
            base_url,
            ..Self::default()
        }
    }

    /// Bounded by a plan's storage of `mb` megabytes: "backup is larger than
    /// your plan's storage (<mb> MB)".
    pub fn with_plan_storage_mb(mut self, mb: u64) -> Self {
        self.max_bytes = mb.saturating_mul(MIB);
        self.limit_label = format!("your plan's storage ({mb} MB)");
        self
    }
}

impl Default for RestoreOptions {
    /// For tests: the nil tenant at `http://localhost`, 10 GB, 30 minutes.
    fn default() -> Self {
        Self {
            tenant_id: Uuid::nil(),
            // A literal: parsing it cannot fail.
            base_url: Url::parse("http://localhost/").expect("a valid literal URL"),
            max_bytes: 10 * 1024 * MIB,
            limit_label: "the restore limit (10240 MB)".to_owned(),
            timeout: Duration::from_secs(30 * 60),
            odoo_version: None,
        }
    }
}
