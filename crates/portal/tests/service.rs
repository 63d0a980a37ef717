//! The portal binary as a real process against its own database.

use saas_testkit::TestDb;
use saas_testkit::contract::{self, Binary};

fn binary() -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_portal"), "PORTAL_PORT")
}

async fn database() -> anyhow::Result<TestDb> {
    let db = TestDb::new("portal").await?;
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

/// The portal's own settings fail like the shared ones: one line naming the
/// variable, exit status 2, secrets never echoed.
#[tokio::test]
async fn bad_portal_settings_exit_2_naming_the_variable() -> anyhow::Result<()> {
    let db = database().await?;
    for (var, value, hidden) in [
        ("MAX_UPLOAD_MB", "lots", None),
        ("BACKUP_STORE_URL", "ftp://backups/x", None),
        (
            "SMTP_URL",
            "http://mailer:hunter2@mail.example.com",
            Some("hunter2"),
        ),
    ] {
        let mut env = binary().env(&db, saas_testkit::free_port()?);
        env.insert(var.to_owned(), value.to_owned());
        let mut process = saas_testkit::ServiceProcess::spawn(&binary().path, &[], &env)?;
        let status = process.wait(std::time::Duration::from_secs(20)).await?;
        let log = process.log();
        anyhow::ensure!(status.code() == Some(2), "{var}: exit {status}; {log}");
        anyhow::ensure!(
            log.lines()
                .any(|l| l.starts_with(&format!("config error: {var}: expected "))),
            "{var}: {log}"
        );
        if let Some(secret) = hidden {
            anyhow::ensure!(!log.contains(secret), "{var} echoed its secret: {log}");
        }
    }
    Ok(())
}
