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
