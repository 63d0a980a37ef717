//! What the worker does when an operation fails or replaces data: a failed
//! provision leaves nothing behind and a retry makes the tenant active; a
//! restore first keeps a safety copy that restores; manual backups beyond the
//! plan's limit go, oldest first. Real worker binary, real data plane.

mod common;

use anyhow::{Context as _, ensure};
use common::{NewTenantSpec, Platform, databases_like};
use saas_core::ops::{self, OperationKind, OperationState};
use saas_testkit::odoo::OdooWorld;
use serde_json::json;
use sqlx::Connection as _;

#[tokio::test]
async fn a_failed_provision_is_cleaned_up_and_a_retry_makes_the_tenant_active() -> anyhow::Result<()>
{
    let world = OdooWorld::new().await?;
    let platform = Platform::start_with(
        &world,
        &[
            ("ODOO_PROBE_TIMEOUT_SECS", "1"),
            ("WORKER_RETRY_BASE_MS", "50"),
        ],
    )
    .await?;
    platform.wait_template(&world).await?;
    // Odoo is down: nothing listens where the server says it is.
    let dead = format!("http://127.0.0.1:{}", saas_testkit::free_port()?);
    sqlx::query("UPDATE servers SET internal_url = $1")
        .bind(&dead)
        .execute(&platform.pool)
        .await?;
    let subdomain = format!("down-{}", world.suffix);
    let requested = platform
        .request_tenant(
            &world,
            &NewTenantSpec {
                subdomain: &subdomain,
                max_backups: 5,
                max_storage_mb: 2048,
            },
        )
        .await?;
    let tenant = requested.tenant;
    platform.wait_state(tenant, "failed").await?;
    let provision: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM operations WHERE tenant_id = $1 AND kind = 'provision'")
            .bind(tenant)
            .fetch_one(&platform.pool)
            .await?;
    let failed = platform.wait_final(provision).await?;
    ensure!(
        failed.state == OperationState::Failed
            && failed
                .customer_error
                .as_deref()
                .is_some_and(|e| e.contains("Odoo did not answer")),
        "{failed:?}"
    );
    // What the five attempts cloned is gone.
    let mut left = Vec::new();
    for _ in 0..100 {
        left = databases_like(&subdomain).await?;
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ensure!(left.is_empty(), "a failed provision left {left:?}");
    ensure!(
        !world.filestore_root.join(&subdomain).exists(),
        "a failed provision left its filestore"
    );

    // Odoo is back; the operator retries.
    sqlx::query("UPDATE servers SET internal_url = $1")
        .bind(&world.odoo_url)
        .execute(&platform.pool)
        .await?;
    let mut tx = platform.pool.begin().await?;
    ops::store::retry(&mut tx, provision).await?;
    tx.commit().await?;
    ops::push_after_commit(Some(&platform.queue), provision).await;
    platform.wait_state(tenant, "active").await?;
    platform.wait_idle(tenant).await?;
    ensure!(
        databases_like(&subdomain).await? == vec![subdomain.clone()],
        "after the retry: {:?}",
        databases_like(&subdomain).await?
    );
    Ok(())
}

#[tokio::test]
async fn a_restore_keeps_a_safety_copy_that_restores_and_manual_backups_respect_the_plan()
-> anyhow::Result<()> {
    let world = OdooWorld::new().await?;
    let platform = Platform::start(&world).await?;
    let subdomain = format!("safe-{}", world.suffix);
    let requested = platform
        .active_tenant(
            &world,
            &NewTenantSpec {
                subdomain: &subdomain,
                max_backups: 2,
                max_storage_mb: 2048,
            },
        )
        .await?;
    let tenant = requested.tenant;

    let company = |name: &'static str| {
        let subdomain = subdomain.clone();
        async move {
            let mut conn =
                sqlx::PgConnection::connect(&saas_testkit::database_url(&subdomain)?).await?;
            if !name.is_empty() {
                sqlx::query("UPDATE res_company SET name = $1 WHERE id = 1")
                    .bind(name)
                    .execute(&mut conn)
                    .await?;
            }
            let now: String = sqlx::query_scalar("SELECT name FROM res_company WHERE id = 1")
                .fetch_one(&mut conn)
                .await?;
            anyhow::Ok(now)
        }
    };
    company("Before Backup Ltd").await?;
    platform
        .run(tenant, OperationKind::Backup, json!({ "kind": "manual" }))
        .await?;
    let first: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM backups WHERE tenant_id = $1 AND kind = 'manual'")
            .bind(tenant)
            .fetch_one(&platform.pool)
            .await?;
    company("Changed After Backup Ltd").await?;
    platform
        .run(
            tenant,
            OperationKind::Restore,
            json!({ "backup_id": first }),
        )
        .await?;
    ensure!(
        company("").await? == "Before Backup Ltd",
        "the restore did not restore"
    );
    let (safety, days): (uuid::Uuid, f64) = sqlx::query_as(
        "SELECT id, extract(epoch FROM expires_at - created_at)::float8 / 86400
         FROM backups WHERE tenant_id = $1 AND kind = 'pre_restore'",
    )
    .bind(tenant)
    .fetch_one(&platform.pool)
    .await?;
    ensure!((6.99..7.01).contains(&days), "safety copy kept {days} days");
    platform
        .run(
            tenant,
            OperationKind::Restore,
            json!({ "backup_id": safety }),
        )
        .await?;
    ensure!(
        company("").await? == "Changed After Backup Ltd",
        "the safety copy did not hold the data the restore replaced"
    );
    let safety_copies: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM backups WHERE tenant_id = $1 AND kind = 'pre_restore'",
    )
    .bind(tenant)
    .fetch_one(&platform.pool)
    .await?;
    ensure!(
        safety_copies == 2,
        "{safety_copies} safety copies for two restores"
    );

    // The plan keeps two manual backups: a third pushes out the oldest.
    for _ in 0..2 {
        platform
            .run(tenant, OperationKind::Backup, json!({ "kind": "manual" }))
            .await?;
    }
    // The backup's row and its success commit together; retention runs
    // right after, so the test waits for it.
    let mut manual: Vec<(uuid::Uuid, String)> = Vec::new();
    for _ in 0..100 {
        manual = sqlx::query_as(
            "SELECT id, object_key FROM backups WHERE tenant_id = $1 AND kind = 'manual' ORDER BY created_at",
        )
        .bind(tenant)
        .fetch_all(&platform.pool)
        .await?;
        if manual.len() <= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    ensure!(manual.len() == 2, "manual backups kept: {manual:?}");
    ensure!(
        manual.iter().all(|(id, _)| *id != first),
        "the oldest manual backup survived"
    );
    let files = std::fs::read_dir(platform.backups.join(tenant.to_string()).join(&subdomain))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("pre-restore-"))
        .count();
    ensure!(files == 2, "{files} manual backup files in the store");
    Ok(())
}

#[tokio::test]
async fn the_worker_drops_guest_roles_a_crash_left_behind() -> anyhow::Result<()> {
    let world = OdooWorld::new().await?;
    // A guest whose deadline passed long ago, as a worker killed mid-restore
    // leaves it (the name carries the deadline).
    let leftover = format!("saas_guest_1000_{}ab", world.suffix);
    saas_testkit::odoo::admin_exec(&format!(r#"CREATE ROLE "{leftover}" LOGIN"#)).await?;
    let _platform = Platform::start(&world).await?;
    let mut admin = sqlx::PgConnection::connect(&saas_testkit::admin_database_url()).await?;
    for _ in 0..100 {
        let left: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(&leftover)
                .fetch_one(&mut admin)
                .await?;
        if !left {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = saas_testkit::odoo::admin_exec(&format!(r#"DROP ROLE IF EXISTS "{leftover}""#)).await;
    anyhow::bail!("the leftover guest {leftover} is still there")
}

#[tokio::test]
async fn a_hostile_upload_fails_and_the_customer_reads_nothing_of_other_databases()
-> anyhow::Result<()> {
    use std::io::Write as _;
    let world = OdooWorld::new().await?;
    let platform = Platform::start(&world).await?;
    let subdomain = format!("host-{}", world.suffix);
    let requested = platform
        .active_tenant(
            &world,
            &NewTenantSpec {
                subdomain: &subdomain,
                max_backups: 5,
                max_storage_mb: 2048,
            },
        )
        .await?;
    let tenant = requested.tenant;

    // The fixture, then an exception quoting every database of the cluster.
    let mut dump = std::fs::read(saas_testkit::odoo::fixture_path())?;
    dump.extend_from_slice(
        b"DO $$ BEGIN RAISE EXCEPTION 'leak: %', \
          (SELECT string_agg(datname, ',') FROM pg_database); END $$;\n",
    );
    let key = format!("{tenant}/upload-hostile.zip");
    let path = platform.backups.join(&key);
    std::fs::create_dir_all(path.parent().context("no parent")?)?;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path)?);
    zip.start_file("dump.sql", zip::write::SimpleFileOptions::default())?;
    zip.write_all(&dump)?;
    zip.finish()?;
    let backup = uuid::Uuid::new_v4();
    // Recorded as an upload is: its real size and SHA-256, so the restore
    // gets past the copy's check and runs the hostile dump.
    let zip_bytes = std::fs::read(&path)?;
    sqlx::query(
        "INSERT INTO backups (id, tenant_id, object_key, size_bytes, sha256, kind)
         VALUES ($1, $2, $3, $4, $5, 'upload')",
    )
    .bind(backup)
    .bind(tenant)
    .bind(&key)
    .bind(i64::try_from(zip_bytes.len())?)
    .bind(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        &zip_bytes,
    )))
    .execute(&platform.pool)
    .await?;
    let op = platform
        .request(
            tenant,
            OperationKind::Restore,
            json!({ "backup_id": backup }),
        )
        .await?;
    let done = platform.wait_final(op).await?;
    let customer = done.customer_error.clone().unwrap_or_default();
    let operators = done.last_error.clone().unwrap_or_default();
    ensure!(done.state == OperationState::Failed, "{done:?}");
    ensure!(
        customer.starts_with("dump.sql line ")
            && customer.contains("an exception raised by the dump"),
        "customer reads: {customer}"
    );
    for foreign in [&world.template, "postgres", "template1"] {
        ensure!(
            !customer.contains(foreign),
            "customer reads {foreign}: {customer}"
        );
    }
    ensure!(
        operators.contains("leak:"),
        "operators lose the detail: {operators}"
    );
    // The tenant kept its data and is active.
    let state: String = sqlx::query_scalar("SELECT state FROM tenants WHERE id = $1")
        .bind(tenant)
        .fetch_one(&platform.pool)
        .await?;
    ensure!(state == "active", "tenant is {state}");
    ensure!(
        databases_like(&subdomain).await? == vec![subdomain.clone()],
        "{:?}",
        databases_like(&subdomain).await?
    );
    Ok(())
}
