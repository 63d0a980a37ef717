//! The worker binary as a real process against its own database.

use saas_testkit::TestDb;
use saas_testkit::contract::{self, Binary};

fn binary() -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_worker"), "WORKER_PORT")
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
