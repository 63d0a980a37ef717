//! The admin binary as a real process against its own database.

use saas_testkit::TestDb;
use saas_testkit::contract::Binary;

fn binary() -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_admin"), "ADMIN_PORT")
}

async fn database() -> anyhow::Result<TestDb> {
    TestDb::new("admin").await
}

saas_testkit::service_contract_tests!(binary(), database());

/// Admin's own settings fail like the shared ones: one line naming the
/// variable, exit status 2.
#[tokio::test]
async fn bad_admin_settings_exit_2_naming_the_variable() -> anyhow::Result<()> {
    let db = database().await?;
    for (var, pairs) in [
        (
            "ADMIN_SESSION_IDLE_SECS",
            &[("ADMIN_SESSION_IDLE_SECS", "30m")][..],
        ),
        (
            "ADMIN_SESSION_ABSOLUTE_SECS",
            &[("ADMIN_SESSION_ABSOLUTE_SECS", "0")][..],
        ),
        (
            "ADMIN_SESSION_IDLE_SECS",
            &[
                ("ADMIN_SESSION_IDLE_SECS", "7200"),
                ("ADMIN_SESSION_ABSOLUTE_SECS", "3600"),
            ][..],
        ),
        ("BACKUP_STORE_URL", &[("BACKUP_STORE_URL", "ftp://x/y")][..]),
    ] {
        let mut env = binary().env(&db, saas_testkit::free_port()?);
        for (k, v) in pairs {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let mut process = saas_testkit::ServiceProcess::spawn(&binary().path, &[], &env)?;
        let status = process.wait(std::time::Duration::from_secs(20)).await?;
        let log = process.log();
        anyhow::ensure!(status.code() == Some(2), "{pairs:?}: exit {status}; {log}");
        anyhow::ensure!(
            log.lines()
                .any(|l| l.starts_with(&format!("config error: {var}: expected "))),
            "{pairs:?}: {log}"
        );
    }
    Ok(())
}
