//! Putting a restored database and filestore in place of a tenant's: renames
//! only, the old ones kept until the new ones are in place, and repair of a
//! swap that a crash interrupted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::Rng as _;
use sqlx::{Executor as _, PgConnection};
use uuid::Uuid;

use crate::error::{OdooError, Result};
use crate::filestore::remove_tree;
use crate::ident::{MAX_IDENT_LEN, quoted};
use crate::marker::{is_marked_for, read_marker};
use crate::provision::database_owner;
use crate::server::OdooServer;
use saas_core::error_chain::Chain;

/// `DROP DATABASE ... WITH (FORCE)`, also of a database its owner marked
/// `IS_TEMPLATE` (an owner may; PostgreSQL refuses to drop a template).
pub(crate) async fn drop_database(admin: &mut PgConnection, name: &str) -> Result<()> {
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1)",
    )
    .bind(name)
    .fetch_one(&mut *admin)
    .await?;
    if exists {
        admin
            .execute(format!("ALTER DATABASE {} IS_TEMPLATE false", quoted(name)).as_str())
            .await?;
    }
    admin
        .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quoted(name)).as_str())
        .await?;
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
/// tenant renamed aside but never replaced gets its database back (unless it
/// carries another tenant's marker than `tenant_id`).
pub(crate) async fn recover_interrupted_swap(
    admin: &mut PgConnection,
    db: &str,
    tenant_id: Uuid,
) -> Result<()> {
    for stale in side_databases(admin, db, "restore").await? {
        drop_database(admin, &stale).await?;
    }
    let olds = side_databases(admin, db, "old").await?;
    let put_back = match olds.as_slice() {
        [old] if database_owner(admin, db).await?.is_none() => {
            is_marked_for(admin, old, tenant_id).await?
                || read_marker(admin, old).await? == Some(None)
        }
        _ => false,
    };
    if put_back {
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
            drop_database(admin, &stale).await?;
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

async fn rename(admin: &mut PgConnection, from: &str, to: &str) -> Result<()> {
    admin
        .execute(format!("ALTER DATABASE {} RENAME TO {}", quoted(from), quoted(to)).as_str())
        .await?;
    Ok(())
}

/// Puts `new_db` and `staging` in place of the tenant's database and filestore;
/// the old ones are dropped only once the new ones are in place.
pub(crate) async fn swap(
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
        let mut attempts = 0;
        loop {
            terminate_all(admin, db).await?;
            match rename(admin, db, &old_db).await {
                Ok(()) => break,
                Err(e) if attempts < 50 => {
                    tracing::debug!(error = %Chain(&e), "tenant database still in use");
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

    if exists && let Err(e) = drop_database(admin, &old_db).await {
        tracing::warn!(error = %Chain(&e), "old tenant database left aside; the next restore drops it");
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
    use crate::ident::check_db_name;

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
