//! Restore: a customer's backup into a new database and filestore, checked,
//! then swapped in place of the tenant's. Until the swap the tenant is not
//! touched; a failed restore leaves it exactly as it was.
//!
//! The dump is the customer's SQL, so it runs as a throw-away guest role that
//! owns only the new database (see `guest.rs`), through psql in `\restrict`
//! mode (see `restricted_psql.rs`), bounded in bytes and time. Everything the
//! platform then reads or writes inside the new database goes through that
//! guest too; the platform's own session only creates, grants, reassigns,
//! marks and renames.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection as _, Executor as _, PgConnection};

use crate::archive::{Layout, extract_filestore, inspect};
use crate::budget::{Budget, watch_database};
use crate::compat::check_compatible;
use crate::error::{OdooError, Result};
use crate::filestore::remove_tree;
use crate::guest::{Guest, read_as_guest};
use crate::ident::{check_db_name, quoted};
use crate::marker::read_marker;
use crate::pgtools::{restricted_psql, server_major};
use crate::provision::database_owner;
use crate::restore_options::RestoreOptions;
use crate::restored_db::{check_and_stamp, hand_over, old_signaling, reset_database};
use crate::restricted_psql::{DumpRun, run_dump};
use crate::server::OdooServer;
use crate::store::BackupStore;
use crate::swap::{drop_database, recover_interrupted_swap, side_name, swap};
use saas_core::error_chain::Chain;

/// What a restore did.
#[derive(Clone, Debug)]
pub struct RestoreReport {
    /// Whether an existing tenant database was replaced (else it was created).
    pub replaced_existing: bool,
    pub filestore_files: usize,
    /// `manifest.json` of the archive, when it had one.
    pub manifest: Option<serde_json::Value>,
    pub duration: Duration,
}

/// Restores backup `key` from `store` as tenant database `db` (downloaded next to
/// the filestore first, so the zip can be checked before anything changes; an
/// object too large for `options.max_bytes` is refused before the download).
#[tracing::instrument(skip_all)]
pub async fn restore_tenant(
    server: &OdooServer,
    db: &str,
    store: &BackupStore,
    key: &str,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    restore_tenant_from_copies(server, db, &[store], key, None, options)
        .await
        .map(|(report, _)| report)
}

/// Restores backup `key` as tenant database `db` from the first of `copies`
/// (primary, then replica) whose object is there and has the recorded
/// `sha256` (checked on the downloaded plain zip, before anything changes);
/// returns which store the restored copy came from.
#[tracing::instrument(skip_all)]
pub async fn restore_tenant_from_copies(
    server: &OdooServer,
    db: &str,
    copies: &[&BackupStore],
    key: &str,
    sha256: Option<&str>,
    options: &RestoreOptions,
) -> Result<(RestoreReport, saas_core::backup_store::StoreRole)> {
    check_db_name(db)?;
    let root = server.filestore_root.clone();
    tokio::fs::create_dir_all(&root)
        .await
        .map_err(|e| OdooError::io(&root, e))?;
    let download = tempfile::Builder::new()
        .prefix(&format!(".saas-download-{db}-"))
        .suffix(".zip")
        .tempfile_in(&root)
        .map_err(|e| OdooError::io(&root, e))?;
    let source = fetch_verified(copies, key, sha256, download.path(), options).await?;
    let report = restore_tenant_from_file(server, db, download.path(), options).await?;
    Ok((report, source))
}

/// Downloads the first usable copy of `key` into `target`; a missing or
/// corrupt copy is logged and the next one tried; one larger than
/// `options.max_bytes` is refused. Returns which store served.
pub async fn fetch_verified(
    copies: &[&BackupStore],
    key: &str,
    sha256: Option<&str>,
    target: &Path,
    options: &RestoreOptions,
) -> Result<saas_core::backup_store::StoreRole> {
    let budget = budget_of(options);
    let mut first_error = None;
    for copy in copies {
        let attempt = async {
            let size = match copy.size(key).await {
                Ok(size) => size,
                Err(OdooError::Storage(object_store::Error::NotFound { .. })) => {
                    return Err(OdooError::BackupUnusable {
                        key: key.to_owned(),
                        store: copy.role().as_str(),
                        reason: "the object is missing".to_owned(),
                    });
                }
                Err(err) => return Err(err),
            };
            budget.check_archive(size)?;
            copy.download_verified(key, target, sha256).await
        };
        match attempt.await {
            Ok(_) => return Ok(copy.role()),
            Err(err @ OdooError::RestoreTooLarge { .. }) => return Err(err),
            Err(err) => {
                tracing::warn!(store = copy.role().as_str(), error = %Chain(&err), "this copy of the backup cannot be used; trying the next");
                first_error.get_or_insert(err);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| OdooError::invalid("backup copies", "no store to read from")))
}

/// Restores the zip at `archive` as tenant database `db`. When the cluster
/// has no connection slot for psql (or any session of the restore), the
/// restore starts again after a pause: a failed attempt has cleaned up after
/// itself and the tenant's database is untouched until the swap.
#[tracing::instrument(skip_all)]
pub async fn restore_tenant_from_file(
    server: &OdooServer,
    db: &str,
    archive: &Path,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    crate::too_many_clients::retry_too_many_clients("restore", server.slot_wait, || {
        restore_once(server, db, archive, options)
    })
    .await
}

async fn restore_once(
    server: &OdooServer,
    db: &str,
    archive: &Path,
    options: &RestoreOptions,
) -> Result<RestoreReport> {
    check_db_name(db)?;
    let started = Instant::now();
    let budget = Arc::new(budget_of(options));
    let mut admin = server.connect_admin().await?;
    // First put back what an interrupted restore may have left, whatever this
    // archive turns out to be.
    recover_interrupted_swap(&mut admin, db, options.tenant_id).await?;
    refuse_other_tenants(&mut admin, db, options).await?;
    let size = std::fs::metadata(archive)
        .map_err(|e| OdooError::io(archive, e))?
        .len();
    budget.check_archive(size)?;
    let path = archive.to_path_buf();
    let layout = tokio::task::spawn_blocking(move || inspect(&path)).await??;
    let major = server_major(&mut admin).await?;
    let odoo = match &options.odoo_version {
        Some(version) => Some(version.clone()),
        None => current_odoo_version(server, &mut admin, db).await?,
    };
    check_compatible(
        layout.manifest.as_ref(),
        &layout.header,
        major,
        odoo.as_deref(),
    )?;
    let psql = restricted_psql(major).await?;

    let mut guest = Guest::create(
        &mut admin,
        "restore",
        db,
        options.timeout,
        options.max_bytes,
    )
    .await?;
    let restore = Restore {
        server,
        db,
        new_db: side_name(db, "restore"),
        archive,
        layout: &layout,
        staging: server.staging_path("restore", db),
        options,
        budget,
    };
    let result = restore.run(&mut admin, &mut guest, psql).await;
    if result.is_err() {
        restore.clean_up(&mut admin, &guest).await;
    }
    let (replaced_existing, filestore_files) = result?;
    tracing::info!(
        replaced_existing,
        filestore_files,
        ms = started.elapsed().as_millis() as u64,
        "tenant restored"
    );
    Ok(RestoreReport {
        replaced_existing,
        filestore_files,
        manifest: layout.manifest,
        duration: started.elapsed(),
    })
}

fn budget_of(options: &RestoreOptions) -> Budget {
    Budget::new(options.max_bytes, &options.limit_label)
}

/// A tenant database carrying another tenant's marker is not this tenant's
/// to replace.
async fn refuse_other_tenants(
    admin: &mut PgConnection,
    db: &str,
    options: &RestoreOptions,
) -> Result<()> {
    match read_marker(admin, db).await? {
        Some(Some(owner)) if owner != options.tenant_id => Err(OdooError::ForeignDatabase {
            db: db.to_owned(),
            reason: "carries another tenant's marker".into(),
        }),
        _ => Ok(()),
    }
}

/// The Odoo series of the tenant's current database (its `base` module
/// version, read through a guest); `None` when there is no readable one.
async fn current_odoo_version(
    server: &OdooServer,
    admin: &mut PgConnection,
    db: &str,
) -> Result<Option<String>> {
    if database_owner(admin, db).await?.is_none() {
        return Ok(None);
    }
    let read = read_as_guest(
        server,
        db,
        &["ir_module_module"],
        "reading the Odoo version",
        async |conn| {
            Ok(sqlx::query_scalar::<_, Option<String>>(
                "SELECT latest_version::text FROM ir_module_module \
             WHERE name = 'base' AND state = 'installed'",
            )
            .fetch_optional(conn)
            .await?
            .flatten())
        },
    )
    .await;
    // A broken tenant database must not stop the restore that repairs it.
    Ok(read.unwrap_or_else(|e| {
        tracing::warn!(error = %Chain(&e), "could not read the current Odoo version; not checked");
        None
    }))
}

/// One restore in progress.
struct Restore<'a> {
    server: &'a OdooServer,
    db: &'a str,
    new_db: String,
    archive: &'a Path,
    layout: &'a Layout,
    staging: PathBuf,
    options: &'a RestoreOptions,
    budget: Arc<Budget>,
}

impl Restore<'_> {
    /// Returns whether an existing database was replaced, and the number of
    /// filestore files.
    async fn run(
        &self,
        admin: &mut PgConnection,
        guest: &mut Guest,
        psql: PathBuf,
    ) -> Result<(bool, usize)> {
        self.create_database(admin, guest).await?;
        let run = DumpRun {
            psql,
            env: guest.psql_env(self.server, &self.new_db)?,
            archive: self.archive.to_path_buf(),
            dump_index: self.layout.dump,
            budget: Arc::clone(&self.budget),
        };
        let timeout = self.options.timeout;
        tokio::time::timeout(
            timeout,
            watch_database(admin, &self.new_db, &self.budget, run_dump(run)),
        )
        .await
        .map_err(|_| OdooError::RestoreTimeout(timeout))??;
        // Whatever password the dump gave the guest, and whatever session it
        // opened, end here; so do the settings it gave its database.
        guest.lock_out(admin, &self.new_db).await?;
        reset_database(admin, &self.new_db).await?;

        let (archive, layout, staging, budget) = (
            self.archive.to_path_buf(),
            self.layout.clone(),
            self.staging.clone(),
            Arc::clone(&self.budget),
        );
        let files = tokio::task::spawn_blocking(move || {
            extract_filestore(&archive, &layout, &staging, &budget)
        })
        .await??;

        let exists = database_owner(admin, self.db).await?.is_some();
        let old_signals = if exists {
            old_signaling(self.server, self.db).await?
        } else {
            Vec::new()
        };
        let mut conn = guest.connect(self.server, &self.new_db).await?;
        let stamped = watch_database(
            admin,
            &self.new_db,
            &self.budget,
            check_and_stamp(
                &mut conn,
                self.options.tenant_id,
                &self.options.base_url,
                &old_signals,
            ),
        )
        .await;
        let _ = conn.close().await;
        stamped?;
        self.budget
            .check_database(database_size(admin, &self.new_db).await?)?;

        hand_over(
            self.server,
            admin,
            &self.new_db,
            guest,
            self.options.tenant_id,
        )
        .await?;
        let replaced = swap(self.server, admin, self.db, &self.new_db, &self.staging).await?;
        Ok((replaced, files))
    }

    /// The new database belongs to the guest from the start (so everything the
    /// dump creates does too); nobody else may connect to it.
    async fn create_database(&self, admin: &mut PgConnection, guest: &Guest) -> Result<()> {
        let name = quoted(&self.new_db);
        admin
            .execute(
                format!(
                    "CREATE DATABASE {name} OWNER {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C'",
                    quoted(guest.name())
                )
                .as_str(),
            )
            .await?;
        admin
            .execute(format!("REVOKE ALL ON DATABASE {name} FROM PUBLIC").as_str())
            .await?;
        // `public` belongs to pg_database_owner, whose rights a NOINHERIT
        // guest does not use: it gets the schema itself.
        let mut conn = self.server.connect_db_for_ddl(&self.new_db).await?;
        conn.execute(format!("ALTER SCHEMA public OWNER TO {}", quoted(guest.name())).as_str())
            .await?;
        let _ = conn.close().await;
        Ok(())
    }

    /// After a failure: the new database and the staging filestore go, then
    /// the guest. A guest whose database could not be dropped is left for
    /// [`crate::drop_leftover_guests`], which drops both.
    async fn clean_up(&self, admin: &mut PgConnection, guest: &Guest) {
        // A failure (or a stopped query) may have broken the session.
        let mut fresh = None;
        if admin.ping().await.is_err() {
            fresh = self.server.connect_admin().await.ok();
        }
        let admin = match fresh.as_mut() {
            Some(conn) => conn,
            None => admin,
        };
        match drop_database(admin, &self.new_db).await {
            Ok(()) => {
                if let Err(e) = guest.finish(self.server, admin).await {
                    tracing::warn!(error = %Chain(&e), "the restore's guest role is left for the reconciler");
                }
            }
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "a failed restore's database is left for the reconciler")
            }
        }
        let staging = self.staging.clone();
        let _ = tokio::task::spawn_blocking(move || remove_tree(&staging)).await;
    }
}

async fn database_size(admin: &mut PgConnection, db: &str) -> Result<u64> {
    let size: i64 = sqlx::query_scalar(
        "SELECT pg_catalog.pg_database_size(oid) FROM pg_catalog.pg_database WHERE datname = $1",
    )
    .bind(db)
    .fetch_one(admin)
    .await?;
    Ok(size.max(0) as u64)
}
