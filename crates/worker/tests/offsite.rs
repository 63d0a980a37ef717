//! Offsite backups against a real S3 server on loopback (Garage, see
//! `saas_testkit::garage`), through the real worker binary and data plane:
//! backup, list, download and restore; an archive larger than a multipart
//! part; the S3 server killed mid-upload; a corrupt primary copy caught by
//! its SHA-256 and the replica used; retention in both stores.
//!
//! Each test starts its own Garage; without a `garage` binary the tests say
//! SKIPPED and pass (CI installs it: `.ci/run`).

mod common;

use std::io::Read as _;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use common::{NewTenantSpec, Platform};
use saas_core::backup_store::{BackupCopies, BackupStoreSettings, StoreRole};
use saas_core::config::Env;
use saas_core::ops::OperationKind;
use saas_odoo::BackupStore;
use saas_testkit::PrivateGarage;
use saas_testkit::odoo::OdooWorld;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

const KEY_HEX: &str = "8f1d2c3b4a5968778695a4b3c2d1e0f00112233445566778899aabbccddeeff0";

/// Random bytes (deflate cannot shrink them), so the archive is at least
/// this large.
fn incompressible(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in bytes.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = chunk.len();
        chunk.copy_from_slice(&state.to_le_bytes()[..n]);
    }
    bytes
}

/// The settings the worker runs with, as a test reads them.
fn settings(pairs: &[(String, String)]) -> anyhow::Result<BackupStoreSettings> {
    Ok(BackupStoreSettings::from_env(&Env::from_pairs(
        pairs.iter().cloned(),
    ))?)
}

fn as_refs(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

async fn tenant(
    platform: &Platform,
    world: &OdooWorld,
    name: &str,
    max_backups: i32,
) -> anyhow::Result<(Uuid, String)> {
    let subdomain = format!("{name}-{}", world.suffix);
    let requested = platform
        .active_tenant(
            world,
            &NewTenantSpec {
                subdomain: &subdomain,
                max_backups,
                max_storage_mb: 2048,
            },
        )
        .await?;
    Ok((requested.tenant, subdomain))
}

async fn backup_row(
    platform: &Platform,
    tenant: Uuid,
) -> anyhow::Result<(Uuid, String, i64, String)> {
    Ok(sqlx::query_as(
        "SELECT id, object_key, size_bytes, sha256 FROM backups WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 1",
    )
    .bind(tenant)
    .fetch_one(&platform.pool)
    .await?)
}

#[tokio::test]
async fn backups_go_to_s3_encrypted_in_parts_and_come_back_plain_through_the_worker()
-> anyhow::Result<()> {
    let Some(garage) = PrivateGarage::start_if_installed("backups").await? else {
        return Ok(());
    };
    let mut env = garage.env("BACKUP_STORE_URL", "backups", "odoo-saas");
    env.push(("BACKUP_ENCRYPTION_KEY".to_owned(), KEY_HEX.to_owned()));
    let world = OdooWorld::new().await?;
    let platform = Platform::start_with(&world, &as_refs(&env)).await?;
    let (tenant, db) = tenant(&platform, &world, "offsite", 5).await?;
    // More than two multipart parts (8 MiB each) of data deflate cannot shrink.
    let big = incompressible(20 << 20);
    let big_path = world.filestore_root.join(&db).join("ff/big.bin");
    std::fs::create_dir_all(big_path.parent().context("parent")?)?;
    std::fs::write(&big_path, &big)?;

    platform
        .run(tenant, OperationKind::Backup, json!({ "kind": "manual" }))
        .await?;
    let (id, key, size, sha) = backup_row(&platform, tenant).await?;
    ensure!(
        size > 2 * saas_odoo::backup::PART as i64,
        "the archive ({size} bytes) spans several parts"
    );
    // Listed in the platform and in the bucket, encrypted at rest.
    let listed = saas_core::backups::list_for_tenant(&platform.pool, tenant).await?;
    ensure!(listed.len() == 1 && listed[0].id == id, "{listed:?}");
    let settings = settings(&env)?;
    let (store, _) = BackupStore::from_settings(&settings)?;
    let objects = store.list_under(&tenant.to_string()).await?;
    ensure!(objects.len() == 1 && objects[0].key == key, "{objects:?}");
    ensure!(
        objects[0].size == saas_core::backup_store::encrypted_size(u64::try_from(size)?),
        "stored {} bytes for a {size}-byte zip",
        objects[0].size
    );
    ensure!(
        store.incomplete_uploads(None).await?.is_empty(),
        "no unfinished upload is left"
    );

    // Downloaded the way admin and portal stream it: the plain Odoo zip.
    let copies = BackupCopies::open(&settings).map_err(anyhow::Error::msg)?;
    let (role, stream) = copies.read_plain(&key, &sha).await?;
    ensure!(role == StoreRole::Primary);
    let chunks: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(stream).await?;
    let zip_bytes = chunks.concat();
    ensure!(zip_bytes.len() as i64 == size);
    ensure!(hex::encode(Sha256::digest(&zip_bytes)) == sha);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes))?;
    let mut stored_big = Vec::new();
    zip.by_name("filestore/ff/big.bin")?
        .read_to_end(&mut stored_big)?;
    ensure!(stored_big == big, "the filestore came back byte for byte");
    ensure!(zip.by_name("dump.sql").is_ok() && zip.by_name("manifest.json").is_ok());

    // Restored from S3 through the worker: what changed after the backup goes.
    let mut conn =
        <sqlx::PgConnection as sqlx::Connection>::connect(&saas_testkit::database_url(&db)?)
            .await?;
    sqlx::query("CREATE TABLE made_after_the_backup (x int)")
        .execute(&mut conn)
        .await?;
    drop(conn);
    std::fs::remove_file(&big_path)?;
    platform
        .run(tenant, OperationKind::Restore, json!({ "backup_id": id }))
        .await?;
    let mut conn =
        <sqlx::PgConnection as sqlx::Connection>::connect(&saas_testkit::database_url(&db)?)
            .await?;
    let kept: bool =
        sqlx::query_scalar("SELECT to_regclass('public.made_after_the_backup') IS NOT NULL")
            .fetch_one(&mut conn)
            .await?;
    ensure!(!kept, "the restore did not replace the database");
    ensure!(
        std::fs::read(&big_path)? == big,
        "the filestore was restored"
    );
    Ok(())
}

#[tokio::test]
async fn an_s3_server_killed_mid_upload_leaves_no_record_and_no_partial_object()
-> anyhow::Result<()> {
    let Some(mut garage) = PrivateGarage::start_if_installed("backups").await? else {
        return Ok(());
    };
    let env = garage.env("BACKUP_STORE_URL", "backups", "cut");
    let world = OdooWorld::new().await?;
    let mut platform = Platform::start_with(&world, &as_refs(&env)).await?;
    let (tenant, db) = tenant(&platform, &world, "cut", 5).await?;
    let dir = world.filestore_root.join(&db).join("ee");
    std::fs::create_dir_all(&dir)?;
    for n in 0..6 {
        std::fs::write(dir.join(format!("big-{n}.bin")), incompressible(16 << 20))?;
    }
    let settings = settings(&env)?;
    let (store, _) = BackupStore::from_settings(&settings)?;

    let op = platform
        .request(tenant, OperationKind::Backup, json!({ "kind": "manual" }))
        .await?;
    // Kill the S3 server once the upload is under way.
    let mut started = false;
    for _ in 0..600 {
        if !store
            .incomplete_uploads(Some(&tenant.to_string()))
            .await?
            .is_empty()
        {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        started,
        "the upload never started; log:\n{}",
        platform.worker.log()
    );
    garage.stop();
    // The attempt fails; the worker is stopped before it could retry.
    let mut failed = false;
    for _ in 0..600 {
        let error: Option<String> =
            sqlx::query_scalar("SELECT last_error FROM operations WHERE id = $1")
                .bind(op)
                .fetch_one(&platform.pool)
                .await?;
        if error.is_some() {
            failed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        failed,
        "the attempt never failed; log:\n{}",
        platform.worker.log()
    );
    platform.worker.signal("KILL")?;
    platform.worker.wait(Duration::from_secs(10)).await?;
    let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM backups WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&platform.pool)
        .await?;
    ensure!(recorded == 0, "an interrupted backup was recorded");

    // Back up: no object was completed; the unfinished upload the failed
    // abort left is aborted by the sweep.
    garage.restart().await?;
    ensure!(
        store.list_under(&tenant.to_string()).await?.is_empty(),
        "no partial object is visible"
    );
    let pending = store.incomplete_uploads(Some(&tenant.to_string())).await?;
    let locks = worker::tenant_lock::TenantLocks::new(&platform.pool, 1);
    let report = worker::sweep::sweep_once(
        &platform.pool,
        &locks,
        &store,
        worker::sweep::UNRECORDED_GRACE,
    )
    .await?;
    ensure!(
        report.uploads_aborted == pending.len(),
        "{report:?} for {pending:?}"
    );
    ensure!(
        store.incomplete_uploads(None).await?.is_empty(),
        "an unfinished upload survived the sweep"
    );
    ensure!(store.list_under(&tenant.to_string()).await?.is_empty());
    Ok(())
}

/// Primary on local disk, replica in S3.
fn disk_and_s3(world: &OdooWorld, garage: &PrivateGarage) -> Vec<(String, String)> {
    let mut env = garage.env("BACKUP_REPLICA_URL", "replica", "offsite");
    env.push((
        "BACKUP_STORE_URL".to_owned(),
        format!("file://{}", world.path().join("backups").display()),
    ));
    env
}

async fn wait_replicated(platform: &Platform, id: Uuid) -> anyhow::Result<()> {
    for _ in 0..300 {
        let done: bool =
            sqlx::query_scalar("SELECT replica_at IS NOT NULL FROM backups WHERE id = $1")
                .bind(id)
                .fetch_one(&platform.pool)
                .await?;
        if done {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!(
        "backup {id} never reached the replica; log:\n{}",
        platform.worker.log()
    )
}

#[tokio::test]
async fn a_corrupt_primary_copy_is_caught_by_its_sha256_and_the_replica_restores()
-> anyhow::Result<()> {
    let Some(garage) = PrivateGarage::start_if_installed("replica").await? else {
        return Ok(());
    };
    let world = OdooWorld::new().await?;
    let env = disk_and_s3(&world, &garage);
    let platform = Platform::start_with(&world, &as_refs(&env)).await?;
    let (tenant, db) = tenant(&platform, &world, "mirror", 5).await?;
    platform
        .run(tenant, OperationKind::Backup, json!({ "kind": "manual" }))
        .await?;
    let (id, key, _, sha) = backup_row(&platform, tenant).await?;
    wait_replicated(&platform, id).await?;
    let settings = settings(&env)?;
    let (_, replica) = BackupStore::from_settings(&settings)?;
    let replica = replica.context("a replica")?;
    ensure!(replica.exists(&key).await?, "the replica has the copy");

    // Bit rot on the primary disk: same size, one byte changed.
    let primary_file = platform.backups.join(&key);
    let mut bytes = std::fs::read(&primary_file)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&primary_file, &bytes)?;

    let mut conn =
        <sqlx::PgConnection as sqlx::Connection>::connect(&saas_testkit::database_url(&db)?)
            .await?;
    sqlx::query("CREATE TABLE made_after_the_backup (x int)")
        .execute(&mut conn)
        .await?;
    drop(conn);
    platform
        .run(tenant, OperationKind::Restore, json!({ "backup_id": id }))
        .await?;
    let mut conn =
        <sqlx::PgConnection as sqlx::Connection>::connect(&saas_testkit::database_url(&db)?)
            .await?;
    let kept: bool =
        sqlx::query_scalar("SELECT to_regclass('public.made_after_the_backup') IS NOT NULL")
            .fetch_one(&mut conn)
            .await?;
    ensure!(!kept, "the restore did not happen");
    let log = platform.worker.log();
    ensure!(
        log.contains("SHA-256") && log.contains("restored from the replica"),
        "the corruption and the fallback are logged:\n{log}"
    );
    // The primary copy was written back from the replica.
    let repaired = std::fs::read(&primary_file)?;
    ensure!(
        hex::encode(Sha256::digest(&repaired)) == sha,
        "the primary copy is good again"
    );
    let lost: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT primary_lost_at FROM backups WHERE id = $1")
            .bind(id)
            .fetch_one(&platform.pool)
            .await?;
    ensure!(lost.is_none(), "the primary copy is recorded as repaired");
    Ok(())
}

#[tokio::test]
async fn retention_prunes_backups_from_both_stores() -> anyhow::Result<()> {
    let Some(garage) = PrivateGarage::start_if_installed("replica").await? else {
        return Ok(());
    };
    let world = OdooWorld::new().await?;
    let env = disk_and_s3(&world, &garage);
    let platform = Platform::start_with(&world, &as_refs(&env)).await?;
    let (tenant, _) = tenant(&platform, &world, "keep", 1).await?;
    let settings = settings(&env)?;
    let (primary, replica) = BackupStore::from_settings(&settings)?;
    let replica = replica.context("a replica")?;

    platform
        .run(tenant, OperationKind::Backup, json!({ "kind": "manual" }))
        .await?;
    let (first, first_key, _, _) = backup_row(&platform, tenant).await?;
    wait_replicated(&platform, first).await?;
    ensure!(primary.exists(&first_key).await? && replica.exists(&first_key).await?);

    // The plan keeps one manual backup: the second one prunes the first, in
    // both stores.
    platform
        .run(tenant, OperationKind::Backup, json!({ "kind": "manual" }))
        .await?;
    let (second, second_key, _, _) = backup_row(&platform, tenant).await?;
    wait_replicated(&platform, second).await?;
    let rows: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM backups WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_all(&platform.pool)
        .await?;
    ensure!(rows == vec![second], "{rows:?}");
    ensure!(
        !primary.exists(&first_key).await? && !replica.exists(&first_key).await?,
        "the pruned backup is gone from both stores"
    );
    ensure!(primary.exists(&second_key).await? && replica.exists(&second_key).await?);
    let in_replica = replica.list_under(&tenant.to_string()).await?;
    ensure!(in_replica.len() == 1, "{in_replica:?}");
    Ok(())
}

/// `/readyz` answers 503 naming the store while the S3 server is gone.
async fn readyz(platform: &Platform) -> anyhow::Result<(u16, String)> {
    let response = reqwest::get(format!("http://127.0.0.1:{}/readyz", platform.port)).await?;
    Ok((response.status().as_u16(), response.text().await?))
}

async fn wait_readyz(platform: &Platform, status: u16) -> anyhow::Result<String> {
    let mut last = (0, String::new());
    for _ in 0..300 {
        last = readyz(platform).await?;
        if last.0 == status {
            return Ok(last.1);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("/readyz never answered {status}: {last:?}")
}

#[tokio::test]
async fn readyz_reports_the_s3_store_down_while_the_bucket_does_not_answer() -> anyhow::Result<()> {
    let Some(mut garage) = PrivateGarage::start_if_installed("backups").await? else {
        return Ok(());
    };
    let env = garage.env("BACKUP_STORE_URL", "backups", "ready");
    let world = OdooWorld::new().await?;
    let platform = Platform::start_with(&world, &as_refs(&env)).await?;
    wait_readyz(&platform, 200).await?;
    garage.stop();
    let body = wait_readyz(&platform, 503).await?;
    ensure!(
        body.contains("backup_store") && body.contains("BACKUP_STORE_URL"),
        "{body}"
    );
    garage.restart().await?;
    wait_readyz(&platform, 200).await?;
    Ok(())
}
