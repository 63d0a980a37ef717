//! The backup store sweep against the real PostgreSQL and a `file://`
//! store: what interrupted backups left goes, everything else stays.

use std::path::Path;
use std::time::{Duration, SystemTime};

use saas_odoo::BackupStore;
use saas_testkit::TestDb;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;
use worker::sweep::{SweepReport, UNRECORDED_GRACE, sweep_once};
use worker::tenant_lock::TenantLocks;

fn write(path: &Path, age: Duration) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, b"zip")?;
    std::fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now() - age)?;
    Ok(())
}

#[tokio::test]
async fn sweep_removes_staging_files_and_old_unrecorded_objects_of_idle_tenants()
-> anyhow::Result<()> {
    let db = TestDb::new("sweep").await?;
    let pool = db.pool().await?;
    saas_core::db::MIGRATOR.run(&pool).await?;
    let (idle, busy) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::raw_sql(&format!(
        "INSERT INTO customers (id, email, company_name, password_hash)
             VALUES ('00000000-0000-0000-0000-000000000001', 'c@example.com', 'Acme', 'x');
         INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template)
             VALUES ('00000000-0000-0000-0000-000000000002', 'starter', 'Starter', 3, 1024, 7, 'starter');
         INSERT INTO tenants (id, subdomain, customer_id, plan_id, state, db_name) VALUES
             ('{idle}', 'idle', '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002', 'active', 't_idle'),
             ('{busy}', 'busy', '00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002', 'active', 't_busy');
         INSERT INTO backups (id, tenant_id, object_key, size_bytes, sha256, kind)
             VALUES (gen_random_uuid(), '{idle}', '{idle}/t_idle/recorded.zip', 3, repeat('a', 64), 'manual');"
    ))
    .execute(&pool)
    .await?;
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("backups");
    let url = format!("file://{}", root.display());
    let store = BackupStore::from_url(&url)?;
    let old = UNRECORDED_GRACE * 2;
    let fresh = Duration::from_secs(5);
    let files = [
        (format!("{idle}/t_idle/recorded.zip"), old, true),
        (format!("{idle}/t_idle/unrecorded-old.zip"), old, false),
        (format!("{idle}/t_idle/unrecorded-fresh.zip"), fresh, true),
        (format!("{idle}/t_idle/cut.zip#1"), fresh, false),
        (format!("{busy}/t_busy/cut.zip#1"), old, true),
        (format!("{busy}/t_busy/unrecorded-old.zip"), old, true),
        // The portal's uploads live under the database name, not a tenant id.
        ("t_idle/upload-x.zip#1".to_owned(), old, true),
    ];
    for (key, age, _) in &files {
        write(&root.join(key), *age)?;
    }

    // An attempt of `busy` is running right now: it holds the tenant lock.
    let mut running = PgConnection::connect(&db.url).await?;
    assert!(saas_core::ops::lease::try_lock_tenant(&mut running, busy).await?);

    let locks = TenantLocks::new(&pool, 1);
    let report = sweep_once(&pool, &locks, &store, UNRECORDED_GRACE).await?;
    assert_eq!(
        report,
        SweepReport {
            staging_removed: 1,
            unrecorded_removed: 1,
            busy: 1,
            uploads_aborted: 0
        }
    );
    for (key, _, kept) in &files {
        assert_eq!(root.join(key).exists(), *kept, "{key}");
    }

    // Once the attempt is over, the next sweep takes its leftovers too,
    // except what is too fresh to tell from a backup being recorded.
    running.close().await?;
    let mut report = SweepReport::default();
    for _ in 0..50 {
        report = sweep_once(&pool, &locks, &store, UNRECORDED_GRACE).await?;
        if report.busy == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        report,
        SweepReport {
            staging_removed: 1,
            unrecorded_removed: 1,
            busy: 0,
            uploads_aborted: 0
        }
    );
    assert!(root.join(format!("{idle}/t_idle/recorded.zip")).exists());
    assert!(
        root.join(format!("{idle}/t_idle/unrecorded-fresh.zip"))
            .exists()
    );
    Ok(())
}
