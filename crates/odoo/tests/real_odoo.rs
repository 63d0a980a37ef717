//! Against a real Odoo, when `ODOO_TEST_URL` is set (skipped otherwise):
//! provision from a real template, log in with `common.authenticate`, back up,
//! restore, log in again, delete; and RPC naming a template or a suspended
//! tenant from another tenant's hostname logs nobody in.
//!
//! - `ODOO_TEST_URL`: Odoo's URL, e.g. `http://127.0.0.1:8069` (`dbfilter = ^%d$`)
//! - `ODOO_TEST_PG_URL`: superuser URL of Odoo's PostgreSQL (default: the test server)
//! - `ODOO_TEST_DB_ROLE`: Odoo's database role (default `odoo`)
//! - `ODOO_TEST_FILESTORE`: Odoo's `<data_dir>/filestore`, shared with this process
//! - `ODOO_TEST_TEMPLATE`: a template database made by Odoo and sealed with
//!   `odoo/seal-template.sql` (default `tpl_base`)
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

/// The real Odoo named by the `ODOO_TEST_*` variables; `None` when
/// `ODOO_TEST_URL` is not set.
struct RealOdoo {
    odoo: Url,
    server: OdooServer,
    domain: String,
    template: String,
}

const PASSWORD: &str = "Real-Odoo-pw-1";

impl RealOdoo {
    fn from_env() -> anyhow::Result<Option<Self>> {
        let Ok(odoo_url) = std::env::var("ODOO_TEST_URL") else {
            eprintln!("ODOO_TEST_URL is not set: skipping the tests against a real Odoo");
            return Ok(None);
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
        Ok(Some(Self {
            odoo,
            server,
            domain: env_or("ODOO_TEST_DOMAIN", "localhost"),
            template: env_or("ODOO_TEST_TEMPLATE", "tpl_base"),
        }))
    }

    fn host(&self, db: &str) -> String {
        format!("{db}.{}", self.domain)
    }

    fn login(db: &str) -> String {
        format!("{db}@customer.test")
    }

    fn base_url(&self, db: &str) -> anyhow::Result<Url> {
        Ok(Url::parse(&format!("https://{}", self.host(db)))?)
    }

    /// Provisions a new tenant (waiting for Odoo to serve it); returns its
    /// database and tenant id.
    async fn provision(&self) -> anyhow::Result<(String, uuid::Uuid)> {
        let db = format!("t_odoo_{}", saas_testkit::unique_suffix());
        let tenant = uuid::Uuid::new_v4();
        let spec = ProvisionSpec {
            tenant_id: tenant,
            db_name: db.clone(),
            template: self.template.clone(),
            base_url: self.base_url(&db)?,
            company_name: "Real Odoo Test Co".into(),
            admin_login: Self::login(&db),
            admin_password: AdminPassword::Plain(SecretString::from(PASSWORD)),
        };
        let options = ProvisionOptions {
            probe: Some(ProbeOptions {
                timeout: Duration::from_secs(60),
                ..ProbeOptions::default()
            }),
            ..ProvisionOptions::default()
        };
        provision(&self.server, &spec, &options).await?;
        Ok((db, tenant))
    }

    /// `common.authenticate` for `db` sent through `via`'s hostname.
    async fn authenticate(
        &self,
        via: &str,
        db: &str,
        login: &str,
        password: &str,
    ) -> anyhow::Result<serde_json::Value> {
        authenticate(&self.odoo, &self.host(via), db, login, password).await
    }
}

#[tokio::test]
async fn provision_backup_restore_against_real_odoo() -> anyhow::Result<()> {
    let Some(real) = RealOdoo::from_env()? else {
        return Ok(());
    };
    let (db, tenant) = real.provision().await?;
    let login = RealOdoo::login(&db);
    let server = &real.server;
    let outcome = async {
        let uid = real.authenticate(&db, &db, &login, PASSWORD).await?;
        anyhow::ensure!(uid == serde_json::json!(2), "authenticate returned {uid}");
        let wrong = real.authenticate(&db, &db, &login, "wrong").await?;
        anyhow::ensure!(
            wrong == serde_json::json!(false),
            "wrong password accepted: {wrong}"
        );

        let backups = tempfile::tempdir()?;
        let store = BackupStore::from_url(&format!("file://{}", backups.path().display()))?;
        let key = backup_key(&db);
        backup_tenant(server, &db, &store, &key).await?;
        let restore = RestoreOptions::new(tenant, real.base_url(&db)?);
        restore_tenant(server, &db, &store, &key, &restore).await?;
        let uid = real.authenticate(&db, &db, &login, PASSWORD).await?;
        anyhow::ensure!(
            uid == serde_json::json!(2),
            "after restore, authenticate returned {uid}"
        );
        Ok(())
    }
    .await;
    delete_tenant(server, &db, None).await?;
    outcome
}

/// RPC takes the database from the request body, not from the Host: from one
/// tenant's hostname nobody logs into a template or a suspended neighbour.
#[tokio::test]
async fn rpc_cannot_reach_templates_or_suspended_tenants() -> anyhow::Result<()> {
    let Some(real) = RealOdoo::from_env()? else {
        return Ok(());
    };
    let (a, b) = (real.provision().await?.0, real.provision().await?.0);
    let server = &real.server;
    let outcome = async {
        for (login, password) in [("admin", "admin"), ("__system__", "admin")] {
            let uid = real
                .authenticate(&a, &real.template, login, password)
                .await?;
            anyhow::ensure!(
                !uid.is_number(),
                "logged into the template {} as {login}: {uid}",
                real.template
            );
        }
        let uid = real
            .authenticate(&a, &b, &RealOdoo::login(&b), PASSWORD)
            .await?;
        anyhow::ensure!(
            uid == serde_json::json!(2),
            "neighbour before suspension: {uid}"
        );

        saas_odoo::suspend_tenant(server, &b).await?;
        let uid = real
            .authenticate(&a, &b, &RealOdoo::login(&b), PASSWORD)
            .await?;
        anyhow::ensure!(!uid.is_number(), "logged into a suspended tenant: {uid}");
        let own = real
            .authenticate(&b, &b, &RealOdoo::login(&b), PASSWORD)
            .await?;
        anyhow::ensure!(
            !own.is_number(),
            "suspended tenant answered on its own host: {own}"
        );

        saas_odoo::resume_tenant(server, &b).await?;
        let mut uid = serde_json::Value::Null;
        // Odoo may hold the failure in its registry cache for a moment.
        for _ in 0..20 {
            uid = real
                .authenticate(&b, &b, &RealOdoo::login(&b), PASSWORD)
                .await?;
            if uid == serde_json::json!(2) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        anyhow::ensure!(uid == serde_json::json!(2), "after resume: {uid}");
        Ok(())
    }
    .await;
    delete_tenant(server, &a, None).await?;
    delete_tenant(server, &b, None).await?;
    outcome
}
