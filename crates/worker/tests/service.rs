//! The worker binary as a real process against its own database.

use saas_testkit::TestDb;
use saas_testkit::contract::{self, Binary};

fn binary() -> Binary {
    // The routing maps go to a directory of the test's, not to the default
    // `var/routing/` under the crate (the process's working directory).
    let routing = std::env::temp_dir()
        .join(format!("worker-service-{}", saas_testkit::unique_suffix()))
        .join("tenants.map");
    Binary::new(env!("CARGO_BIN_EXE_worker"), "WORKER_PORT")
        .with_env("ROUTING_MAP_PATH", &routing.to_string_lossy())
}

async fn database() -> anyhow::Result<TestDb> {
    let db = TestDb::new("worker").await?;
    saas_core::db::MIGRATOR.run(&db.pool().await?).await?;
    Ok(db)
}

saas_testkit::service_contract_tests!(binary(), database());

#[tokio::test]
async fn waits_for_admin_to_migrate_the_schema() -> anyhow::Result<()> {
    contract::waits_for_schema(&binary(), |url| async move {
        let pool = sqlx::PgPool::connect(&url).await?;
        saas_core::db::MIGRATOR.run(&pool).await?;
        Ok(())
    })
    .await
}

/// A start-up failure deep in the data plane says why in the OS's words:
/// "filesystem error at <dir>" alone leaves the operator guessing.
#[tokio::test]
async fn an_unusable_backup_store_exits_naming_the_cause() -> anyhow::Result<()> {
    let db = database().await?;
    let bin = binary();
    let scratch = tempfile::tempdir()?;
    let not_a_dir = scratch.path().join("a-file");
    std::fs::write(&not_a_dir, b"")?;
    let mut env = bin.env(&db, saas_testkit::free_port()?);
    env.insert(
        "BACKUP_STORE_URL".to_owned(),
        format!("file://{}/backups", not_a_dir.display()),
    );
    let mut process = saas_testkit::ServiceProcess::spawn(&bin.path, &[], &env)?;
    let status = process.wait(std::time::Duration::from_secs(30)).await?;
    let log = process.log();
    anyhow::ensure!(!status.success(), "started with an unusable store: {log}");
    let line = log
        .lines()
        .find(|l| l.starts_with("error: ") && l.contains("BACKUP_STORE_URL"))
        .ok_or_else(|| anyhow::anyhow!("no start-up error line: {log}"))?;
    anyhow::ensure!(
        line.contains("Not a directory"),
        "the cause is missing: {line}"
    );
    Ok(())
}

/// A malformed ODOO_TEMPLATES (the plans the worker offers come from it)
/// stops the worker at once, naming it, like every other variable.
#[tokio::test]
async fn malformed_odoo_templates_exit_2_naming_the_variable() -> anyhow::Result<()> {
    let db = database().await?;
    let bin = binary();
    for bad in [
        "basic",
        "Basic:base",
        "basic:base,,web",
        "basic:base basic:web",
    ] {
        let mut env = bin.env(&db, saas_testkit::free_port()?);
        env.insert("ODOO_TEMPLATES".to_owned(), bad.to_owned());
        let mut process = saas_testkit::ServiceProcess::spawn(&bin.path, &[], &env)?;
        let status = process.wait(std::time::Duration::from_secs(10)).await?;
        let log = process.log();
        anyhow::ensure!(status.code() == Some(2), "{bad:?}: {status}: {log}");
        anyhow::ensure!(
            log.trim()
                .starts_with("config error: ODOO_TEMPLATES: expected"),
            "{bad:?}: {log}"
        );
    }
    Ok(())
}
