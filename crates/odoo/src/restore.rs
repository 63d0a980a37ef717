//! Restore: into a new database and filestore, verified, then swapped in place of
//! the tenant's. Until the swap the tenant is not touched; a failed restore leaves
//! it exactly as it was.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::Rng as _;
use sqlx::{Executor as _, PgConnection};

use crate::archive::{Layout, extract, inspect};
use crate::error::{OdooError, Result};
use crate::filestore::remove_tree;
use crate::ident::{MAX_IDENT_LEN, check_db_name, quoted};
use crate::pgtools::{client_for, server_major};
use crate::provision::database_owner;
use crate::server::OdooServer;
use crate::store::BackupStore;

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
/// the filestore first, so the zip can be checked before anything changes).
#[tracing::instrument(skip_all)]
pub async fn restore_tenant(
    server: &OdooServer,
    db: &str,
    store: &BackupStore,
    key: &str,
) -> Result<RestoreReport> {
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
    store.download(key, download.path()).await?;
    restore_tenant_from_file(server, db, download.path()).await
}

/// Restores the zip at `archive` as tenant database `db`.
#[tracing::instrument(skip_all)]
pub async fn restore_tenant_from_file(
    server: &OdooServer,
    db: &str,
    archive: &Path,
) -> Result<RestoreReport> {
    check_db_name(db)?;
    let started = Instant::now();
    let path = archive.to_path_buf();
    let mut admin = server.connect_admin().await?;
    // First put back what an interrupted restore may have left, whatever this
    // archive turns out to be.
    recover_interrupted_swap(&mut admin, db).await?;
    let layout = tokio::task::spawn_blocking(move || inspect(&path)).await??;
    let psql = client_for("psql", server_major(&mut admin).await?).await?;
    let new_db = side_name(db, "restore");
    admin
        .execute(
            format!(
                "CREATE DATABASE {} OWNER {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C'",
                quoted(&new_db),
                quoted(&server.odoo_db_role)
            )
            .as_str(),
        )
        .await?;
    let staging = server.staging_path("restore", db);
    let result = restore_and_swap(
        server, &mut admin, db, &new_db, archive, &layout, &psql, &staging,
    )
    .await;
    if result.is_err() {
        let _ = admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(&new_db)).as_str())
            .await;
        let _ = remove_tree(&staging);
    }
    let (replaced_existing, filestore_files) = result?;
    Ok(RestoreReport {
        replaced_existing,
        filestore_files,
        manifest: layout.manifest,
        duration: started.elapsed(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn restore_and_swap(
    server: &OdooServer,
    admin: &mut PgConnection,
    db: &str,
    new_db: &str,
    archive: &Path,
    layout: &Layout,
    psql: &Path,
    staging: &Path,
) -> Result<(bool, usize)> {
    let mut env = server.libpq_env(new_db)?;
    // Objects belong to the Odoo role, as when Odoo restores.
    env.push(("PGOPTIONS", format!("-c role={}", server.odoo_db_role)));
    let (archive, psql, staging_dir) = (
        archive.to_path_buf(),
        psql.to_path_buf(),
        staging.to_path_buf(),
    );
    let layout = layout.clone();
    let files =
        tokio::task::spawn_blocking(move || extract(&archive, &layout, &psql, env, &staging_dir))
            .await??;
    verify(server, new_db).await?;
    let replaced = swap(server, admin, db, new_db, staging).await?;
    Ok((replaced, files))
}

/// A restored database must look like Odoo: base installed, users present.
async fn verify(server: &OdooServer, db: &str) -> Result<()> {
    let mut conn = server.connect_db(db).await?;
    let tables: (bool, bool) = sqlx::query_as(
        "SELECT to_regclass('public.ir_module_module') IS NOT NULL, \
                to_regclass('public.res_users') IS NOT NULL",
    )
    .fetch_one(&mut conn)
    .await?;
    if tables != (true, true) {
        return Err(OdooError::VerificationFailed(
            "no ir_module_module or res_users table: not an Odoo database".into(),
        ));
    }
    let base: Option<String> =
        sqlx::query_scalar("SELECT state::text FROM ir_module_module WHERE name = 'base'")
            .fetch_optional(&mut conn)
            .await?;
    if base.as_deref() != Some("installed") {
        return Err(OdooError::VerificationFailed(
            "module base is not installed".into(),
        ));
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM res_users")
        .fetch_one(&mut conn)
        .await?;
    if users == 0 {
        return Err(OdooError::VerificationFailed("no users".into()));
    }
    Ok(())
}

/// `<db>_<tag>_<8 random>` within PostgreSQL's 63 bytes.
pub(crate) fn side_name(db: &str, tag: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..8)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    let keep = MAX_IDENT_LEN - tag.len() - 2 - suffix.len();
    format!("{}_{tag}_{suffix}", &db[..db.len().min(keep)])
}

/// Side databases of `db` named by [`side_name`] (only when `db` was not shortened,
/// so they cannot belong to another tenant).
pub(crate) async fn side_databases(
    admin: &mut PgConnection,
    db: &str,
    tag: &str,
) -> Result<Vec<String>> {
    if db.len() > MAX_IDENT_LEN - tag.len() - 10 {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname ~ ('^' || $1 || '_' || $2 || '_[a-z]{8}$')",
    )
    .bind(db)
    .bind(tag)
    .fetch_all(admin)
    .await?)
}

/// Cleans up after a restore that died: half-restored databases are dropped, and a
/// tenant renamed aside but never replaced gets its database back.
async fn recover_interrupted_swap(admin: &mut PgConnection, db: &str) -> Result<()> {
    for stale in side_databases(admin, db, "restore").await? {
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(&stale)).as_str())
            .await?;
    }
    let olds = side_databases(admin, db, "old").await?;
    if database_owner(admin, db).await?.is_none() && olds.len() == 1 {
        tracing::warn!("restoring a tenant database left aside by an interrupted restore");
        admin
            .execute(
                format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    quoted(&olds[0]),
                    quoted(db)
                )
                .as_str(),
            )
            .await?;
        admin
            .execute(format!("ALTER DATABASE {} CONNECTION LIMIT -1", quoted(db)).as_str())
            .await?;
    } else if database_owner(admin, db).await?.is_some() {
        for stale in olds {
            admin
                .execute(
                    format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(&stale)).as_str(),
                )
                .await?;
        }
    }
    Ok(())
}

async fn terminate_all(admin: &mut PgConnection, db: &str) -> Result<()> {
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db)
    .execute(admin)
    .await?;
    Ok(())
}

/// Odoo's signaling sequences of `db` and their `last_value` (what Odoo reads and
/// caches; 1 for a sequence never used).
async fn signaling(server: &OdooServer, db: &str) -> Result<Vec<(String, i64)>> {
    let mut conn = server.connect_db(db).await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT sequencename::text FROM pg_sequences \
         WHERE schemaname = 'public' AND (sequencename = 'base_registry_signaling' \
            OR sequencename LIKE 'base\\_cache\\_signaling%')",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut values = Vec::with_capacity(names.len());
    for name in names {
        let value: i64 = sqlx::query_scalar(&format!("SELECT last_value FROM {}", quoted(&name)))
            .fetch_one(&mut conn)
            .await?;
        values.push((name, value));
    }
    Ok(values)
}

/// Sets each signaling sequence of `db` above the old database's value, so a
/// running Odoo notices the database changed and drops its caches.
async fn bump_signaling(server: &OdooServer, db: &str, old: &[(String, i64)]) -> Result<()> {
    let current = signaling(server, db).await?;
    let mut conn = server.connect_db(db).await?;
    for (name, value) in current {
        let previous = old.iter().find(|(n, _)| *n == name).map_or(0, |(_, v)| *v);
        sqlx::query("SELECT setval(quote_ident($1)::regclass, $2)")
            .bind(&name)
            .bind(previous.max(value) + 1)
            .execute(&mut conn)
            .await?;
    }
    Ok(())
}

async fn rename(admin: &mut PgConnection, from: &str, to: &str) -> Result<()> {
    admin
        .execute(format!("ALTER DATABASE {} RENAME TO {}", quoted(from), quoted(to)).as_str())
        .await?;
    Ok(())
}

/// Puts `new_db` and `staging` in place of the tenant's database and filestore;
/// the old ones are dropped only once the new ones are in place.
async fn swap(
    server: &OdooServer,
    admin: &mut PgConnection,
    db: &str,
    new_db: &str,
    staging: &Path,
) -> Result<bool> {
    let exists = database_owner(admin, db).await?.is_some();
    let old_db = side_name(db, "old");
    if exists {
        // Superusers ignore the limit: Odoo (its own role) cannot come back.
        admin
            .execute(format!("ALTER DATABASE {} CONNECTION LIMIT 0", quoted(db)).as_str())
            .await?;
        terminate_all(admin, db).await?;
        let old_signals = signaling(server, db).await?;
        bump_signaling(server, new_db, &old_signals).await?;
        let mut attempts = 0;
        loop {
            terminate_all(admin, db).await?;
            match rename(admin, db, &old_db).await {
                Ok(()) => break,
                Err(e) if attempts < 50 => {
                    tracing::debug!(error = %e, "tenant database still in use");
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => {
                    let _ = admin
                        .execute(
                            format!("ALTER DATABASE {} CONNECTION LIMIT -1", quoted(db)).as_str(),
                        )
                        .await;
                    return Err(e);
                }
            }
        }
    }
    if let Err(e) = rename(admin, new_db, db).await {
        if exists {
            let _ = rename(admin, &old_db, db).await;
            let _ = admin
                .execute(format!("ALTER DATABASE {} CONNECTION LIMIT -1", quoted(db)).as_str())
                .await;
        }
        return Err(e);
    }

    let target = server.filestore_dir(db)?;
    let old_files = server.staging_path("old", db);
    let (staging, target_c, old_c) = (staging.to_path_buf(), target.clone(), old_files.clone());
    let moved = tokio::task::spawn_blocking(move || swap_dirs(&staging, &target_c, &old_c))
        .await
        .map_err(OdooError::from)
        .and_then(|r| r);
    if let Err(e) = moved {
        // Put the old database back: the tenant stays as it was.
        terminate_all(admin, db).await?;
        rename(admin, db, new_db).await?;
        if exists {
            rename(admin, &old_db, db).await?;
            admin
                .execute(format!("ALTER DATABASE {} CONNECTION LIMIT -1", quoted(db)).as_str())
                .await?;
        }
        return Err(e);
    }

    if exists
        && let Err(e) = admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(&old_db)).as_str())
            .await
    {
        tracing::warn!(error = %e, "old tenant database left aside; the next restore drops it");
    }
    let _ = tokio::task::spawn_blocking(move || remove_tree(&old_files)).await;
    Ok(exists)
}

fn swap_dirs(staging: &Path, target: &Path, old: &PathBuf) -> Result<()> {
    let had_files = target.exists();
    if had_files {
        std::fs::rename(target, old).map_err(|e| OdooError::io(target, e))?;
    }
    if let Err(e) = std::fs::rename(staging, target) {
        if had_files {
            let _ = std::fs::rename(old, target);
        }
        return Err(OdooError::io(target, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn side_names_fit_postgres() {
        let short = side_name("acme", "restore");
        assert!(short.starts_with("acme_restore_") && short.len() == "acme_restore_".len() + 8);
        let long = side_name(&"a".repeat(63), "restore");
        assert_eq!(long.len(), 63);
        assert!(check_db_name(&long).is_ok());
        assert_ne!(side_name("acme", "old"), side_name("acme", "old"));
    }
}
