//! Against a real Odoo, when `ODOO_TEST_URL` is set (skipped otherwise):
//! provision from a real template, log in with `common.authenticate`, back up,
//! restore, log in again, delete.
//!
//! - `ODOO_TEST_URL`: Odoo's URL, e.g. `http://127.0.0.1:8069` (`dbfilter = ^%d$`)
//! - `ODOO_TEST_PG_URL`: superuser URL of Odoo's PostgreSQL (default: the test server)
//! - `ODOO_TEST_DB_ROLE`: Odoo's database role (default `odoo`)
//! - `ODOO_TEST_FILESTORE`: Odoo's `<data_dir>/filestore`, shared with this process
//! - `ODOO_TEST_TEMPLATE`: a template database made by Odoo (default `tpl_base`)
//! - `ODOO_TEST_DOMAIN`: domain of the tenants' Host header (default `localhost`)

use std::time::Duration;

use anyhow::Context as _;
use saas_odoo::{
    AdminPassword, BackupStore, OdooServer, ProbeOptions, ProvisionOptions, ProvisionSpec,
    RestoreOptions, backup_key, backup_tenant, delete_tenant, provision, restore_tenant,
};
use secrecy::SecretString;
use url::Url;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

async fn authenticate(
    odoo: &Url,
    host: &str,
    db: &str,
    login: &str,
    password: &str,
) -> anyhow::Result<serde_json::Value> {
    let body = serde_json::json!({
        "jsonrpc": "2.0", "method": "call", "id": 1,
        "params": {"service": "common", "method": "authenticate", "args": [db, login, password, {}]},
    });
    let response: serde_json::Value = reqwest::Client::new()
        .post(odoo.join("/jsonrpc")?)
        .header("Host", host)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    Ok(response["result"].clone())
}

#[tokio::test]
async fn provision_backup_restore_against_real_odoo() -> anyhow::Result<()> {
    let Ok(odoo_url) = std::env::var("ODOO_TEST_URL") else {
        eprintln!("ODOO_TEST_URL is not set: skipping the tests against a real Odoo");
        return Ok(());
    };
    let odoo = Url::parse(&odoo_url)?;
    let filestore = std::env::var("ODOO_TEST_FILESTORE")
        .context("ODOO_TEST_FILESTORE is required with ODOO_TEST_URL")?;
    let server = OdooServer::new(
        SecretString::from(env_or(
            "ODOO_TEST_PG_URL",
            &saas_testkit::admin_database_url(),
        )),
        env_or("ODOO_TEST_DB_ROLE", "odoo"),
        filestore,
        odoo.clone(),
    )?;
    let domain = env_or("ODOO_TEST_DOMAIN", "localhost");
    let db = format!("t_odoo_{}", saas_testkit::unique_suffix());
    let host = format!("{db}.{domain}");
    let login = format!("{db}@customer.test");
    let password = "Real-Odoo-pw-1";
    let spec = ProvisionSpec {
        db_name: db.clone(),
        template: env_or("ODOO_TEST_TEMPLATE", "tpl_base"),
        base_url: Url::parse(&format!("https://{host}"))?,
        company_name: "Real Odoo Test Co".into(),
        admin_login: login.clone(),
        admin_password: AdminPassword::Plain(SecretString::from(password)),
    };
    let options = ProvisionOptions {
        probe: Some(ProbeOptions {
            timeout: Duration::from_secs(60),
            ..ProbeOptions::default()
        }),
        ..ProvisionOptions::default()
    };
    let outcome = async {
        provision(&server, &spec, &options).await?;
        let uid = authenticate(&odoo, &host, &db, &login, password).await?;
        anyhow::ensure!(uid == serde_json::json!(2), "authenticate returned {uid}");
        let wrong = authenticate(&odoo, &host, &db, &login, "wrong").await?;
        anyhow::ensure!(
            wrong == serde_json::json!(false),
            "wrong password accepted: {wrong}"
        );

        let backups = tempfile::tempdir()?;
        let store = BackupStore::from_url(&format!("file://{}", backups.path().display()))?;
        let key = backup_key(&db);
        backup_tenant(&server, &db, &store, &key).await?;
        let restore = RestoreOptions::new(uuid::Uuid::new_v4(), spec.base_url.clone());
        restore_tenant(&server, &db, &store, &key, &restore).await?;
        let uid = authenticate(&odoo, &host, &db, &login, password).await?;
        anyhow::ensure!(
            uid == serde_json::json!(2),
            "after restore, authenticate returned {uid}"
        );
        Ok(())
    }
    .await;
    delete_tenant(&server, &db, None).await?;
    outcome
}
