//! Against a real Odoo 18, when `ODOO_TEST_URL` is set (skipped otherwise):
//! the customer's whole journey (create, `common.authenticate`, the login page
//! and web client with every asset bundle, none compiled on the first visit,
//! backup, our zip restored by Odoo's own `/web/database/restore`, an Odoo-made
//! zip restored through the platform, suspend, resume, delete); 50 tenants
//! provisioned, logged into and backed up with no connection error; and RPC
//! naming a template or a suspended tenant from another tenant's hostname logs
//! nobody in.
//!
//! - `ODOO_TEST_URL`: Odoo's URL, e.g. `http://127.0.0.1:8069`, configured as
//!   `odoo/odoo.conf` (`dbfilter = ^%d$`, `list_db = False`)
//! - `ODOO_TEST_MANAGER_URL`: an Odoo with `list_db = True` on the same cluster
//!   and data_dir, for Odoo's own backup/restore (default `ODOO_TEST_URL`)
//! - `ODOO_TEST_MASTER_PASSWORD`: that Odoo's `admin_passwd` (the journey needs it)
//! - `ODOO_TEST_PG_URL`: superuser URL of Odoo's PostgreSQL (default: the test server)
//! - `ODOO_TEST_DB_ROLE`: Odoo's database role (default `odoo`)
//! - `ODOO_TEST_FILESTORE`: Odoo's `<data_dir>/filestore`, shared with this process
//! - `ODOO_TEST_TEMPLATE`: a template built by `odoo/build-templates.sh`
//!   (default `tpl_base`)
//! - `ODOO_TEST_DOMAIN`: domain of the tenants' Host header (default `localhost`)
//! - `ODOO_TEST_SCALE`: tenants of the scale test (default 50)

use std::time::{Duration, Instant};

use anyhow::Context as _;
use saas_odoo::{
    AdminPassword, BackupStore, OdooServer, ProbeOptions, ProvisionOptions, ProvisionSpec,
    RestoreOptions, backup_key, backup_tenant, delete_tenant, provision, restore_tenant,
};
use saas_testkit::real_odoo::{DatabaseManager, TenantBrowser, json_rpc};
use secrecy::SecretString;
use sqlx::Connection as _;
use url::Url;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The real Odoo named by the `ODOO_TEST_*` variables; `None` when
/// `ODOO_TEST_URL` is not set.
struct RealOdoo {
    odoo: Url,
    server: OdooServer,
    pg_url: String,
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
        let pg_url = env_or("ODOO_TEST_PG_URL", &saas_testkit::admin_database_url());
        let server = OdooServer::new(
            SecretString::from(pg_url.clone()),
            env_or("ODOO_TEST_DB_ROLE", "odoo"),
            filestore,
            odoo.clone(),
        )?;
        Ok(Some(Self {
            odoo,
            server,
            pg_url,
            domain: env_or("ODOO_TEST_DOMAIN", "localhost"),
            template: env_or("ODOO_TEST_TEMPLATE", "tpl_base"),
        }))
    }

    fn manager(&self) -> anyhow::Result<DatabaseManager> {
        let master_password = std::env::var("ODOO_TEST_MASTER_PASSWORD").context(
            "ODOO_TEST_MASTER_PASSWORD (admin_passwd of the Odoo at ODOO_TEST_MANAGER_URL) \
             is required for the journey",
        )?;
        Ok(DatabaseManager {
            url: Url::parse(&env_or("ODOO_TEST_MANAGER_URL", self.odoo.as_str()))?,
            master_password,
        })
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

    fn browser(&self, db: &str) -> anyhow::Result<TenantBrowser> {
        TenantBrowser::new(&self.odoo, &self.host(db))
    }

    /// Provisions a new tenant (waiting for Odoo to serve it) with the
    /// platform hashing [`PASSWORD`] as it does for a customer; returns its
    /// database and tenant id.
    async fn provision(&self) -> anyhow::Result<(String, uuid::Uuid)> {
        self.provision_with(AdminPassword::Plain(SecretString::from(PASSWORD)))
            .await
    }

    /// Like [`RealOdoo::provision`] with one 600,000-round hash of
    /// [`PASSWORD`] made once for all (a debug build hashes slowly).
    async fn provision_hashed(&self) -> anyhow::Result<(String, uuid::Uuid)> {
        static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        let hash = HASH
            .get_or_try_init(|| async {
                tokio::task::spawn_blocking(|| {
                    saas_odoo::hash_password_blocking(&SecretString::from(PASSWORD))
                })
                .await
            })
            .await?;
        self.provision_with(AdminPassword::Hashed(hash.clone()))
            .await
    }

    async fn provision_with(
        &self,
        admin_password: AdminPassword,
    ) -> anyhow::Result<(String, uuid::Uuid)> {
        let db = format!("t_odoo_{}", saas_testkit::unique_suffix());
        let tenant = uuid::Uuid::new_v4();
        let spec = ProvisionSpec {
            tenant_id: tenant,
            db_name: db.clone(),
            template: self.template.clone(),
            base_url: self.base_url(&db)?,
            company_name: "Real Odoo Test Co".into(),
            admin_login: Self::login(&db),
            admin_password,
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

    /// `common.authenticate` for `db` sent through `via`'s hostname: the uid,
    /// or `false`/an error value when refused.
    async fn authenticate(
        &self,
        via: &str,
        db: &str,
        login: &str,
        password: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let answer = json_rpc(
            &self.odoo,
            &self.host(via),
            "common",
            "authenticate",
            serde_json::json!([db, login, password, {}]),
        )
        .await;
        // A refused database is an RPC error, which counts as "not logged in".
        Ok(answer.unwrap_or_else(|e| serde_json::Value::String(format!("{e:#}"))))
    }

    /// `common.authenticate` as the tenant's admin, until it is uid 2 (Odoo
    /// may hold a closed database's failure in its cache for a moment).
    async fn logs_in(&self, db: &str) -> anyhow::Result<()> {
        let mut uid = serde_json::Value::Null;
        for _ in 0..20 {
            uid = self
                .authenticate(db, db, &Self::login(db), PASSWORD)
                .await?;
            if uid == serde_json::json!(2) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        anyhow::bail!("{db}: authenticate returned {uid}")
    }

    async fn connect(&self, db: &str) -> anyhow::Result<sqlx::PgConnection> {
        let mut url = Url::parse(&self.pg_url)?;
        url.set_path(db);
        Ok(sqlx::PgConnection::connect(url.as_str()).await?)
    }

    /// Compiled asset bundles stored in `db` (what Odoo serves /web/assets from).
    async fn asset_bundles(&self, db: &str) -> anyhow::Result<Vec<String>> {
        let mut conn = self.connect(db).await?;
        let urls = sqlx::query_scalar(
            "SELECT url FROM ir_attachment WHERE url LIKE '/web/assets/%' \
             AND res_model = 'ir.ui.view' AND public ORDER BY url, id",
        )
        .fetch_all(&mut conn)
        .await?;
        conn.close().await?;
        Ok(urls)
    }

    /// The asset bundle count the seal recorded in the template's comment.
    async fn template_asset_bundles(&self) -> anyhow::Result<i64> {
        let mut conn = self.connect("postgres").await?;
        let count: Option<i64> = sqlx::query_scalar(
            "SELECT (shobj_description(oid, 'pg_database')::jsonb ->> 'asset_bundles')::bigint \
             FROM pg_database WHERE datname = $1",
        )
        .bind(&self.template)
        .fetch_optional(&mut conn)
        .await?
        .flatten();
        count.with_context(|| format!("{} records no asset_bundles", self.template))
    }

    /// Files of `db`'s filestore that its attachments name (`store_fname`)
    /// and that are missing.
    async fn missing_files(&self, db: &str) -> anyhow::Result<Vec<String>> {
        let mut conn = self.connect(db).await?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT store_fname FROM ir_attachment WHERE store_fname IS NOT NULL",
        )
        .fetch_all(&mut conn)
        .await?;
        let dir = self.server.filestore_dir(db)?;
        Ok(names
            .into_iter()
            .filter(|name| !dir.join(name).is_file())
            .collect())
    }
}

/// What a customer does with one instance, start to end, against the real Odoo.
#[tokio::test]
async fn the_customer_journey_against_real_odoo() -> anyhow::Result<()> {
    let Some(real) = RealOdoo::from_env()? else {
        return Ok(());
    };
    let manager = real.manager()?;
    let (db, tenant) = real.provision().await?;
    let copied = format!("{db}_by_odoo");
    let outcome = journey(&real, &manager, &db, tenant, &copied).await;
    let _ = manager.drop_database(&copied).await;
    delete_tenant(&real.server, &db, None).await?;
    outcome
}

async fn journey(
    real: &RealOdoo,
    manager: &DatabaseManager,
    db: &str,
    tenant: uuid::Uuid,
    copied: &str,
) -> anyhow::Result<()> {
    let login = RealOdoo::login(db);
    let uid = real.authenticate(db, db, &login, PASSWORD).await?;
    anyhow::ensure!(uid == serde_json::json!(2), "authenticate returned {uid}");
    let wrong = real.authenticate(db, db, &login, "wrong").await?;
    anyhow::ensure!(!wrong.is_number(), "wrong password accepted: {wrong}");

    // Assets come with the template: the clone holds every compiled bundle
    // (rows and files), and the first visit compiles none.
    let inherited = real.asset_bundles(db).await?;
    anyhow::ensure!(
        !inherited.is_empty() && inherited.len() as i64 == real.template_asset_bundles().await?,
        "the clone holds {} asset bundles, the template recorded {}",
        inherited.len(),
        real.template_asset_bundles().await?
    );
    let missing = real.missing_files(db).await?;
    anyhow::ensure!(
        missing.is_empty(),
        "attachments without their file: {missing:?}"
    );
    let mut browser = real.browser(db)?;
    let visit = browser.first_visit(db, &login, PASSWORD).await?;
    visit.ensure_complete()?;
    let after = real.asset_bundles(db).await?;
    anyhow::ensure!(
        after == inherited,
        "the first visit compiled bundles: before {inherited:?}, after {after:?}"
    );
    for bundle in visit
        .login_page
        .bundles
        .iter()
        .chain(&visit.web_client.bundles)
    {
        anyhow::ensure!(
            inherited.contains(&bundle.path),
            "{} was served but is not one the template brought",
            bundle.path
        );
    }
    anyhow::ensure!(
        visit
            .web_client
            .bundles
            .iter()
            .any(|b| b.path.ends_with("web.assets_web.min.js"))
            && visit
                .web_client
                .bundles
                .iter()
                .any(|b| b.path.ends_with("web.assets_web.min.css")),
        "the web client's bundles: {:?}",
        visit.web_client.bundles
    );
    eprintln!(
        "first visit: login page {:?} + {} bundles, web client {:?} + {} bundles ({} bytes), total {:?}",
        visit.login_page.page.took,
        visit.login_page.bundles.len(),
        visit.web_client.page.took,
        visit.web_client.bundles.len(),
        visit.web_client.bundle_bytes(),
        visit.took
    );

    // Our backup is a zip Odoo's own database manager restores.
    let backups = tempfile::tempdir()?;
    let store = BackupStore::from_url(&format!("file://{}", backups.path().display()))?;
    let key = backup_key(db);
    backup_tenant(&real.server, db, &store, &key).await?;
    let ours = std::fs::read(backups.path().join(&key))?;
    manager.restore(copied, &ours, true).await?;
    let uid = real.authenticate(copied, copied, &login, PASSWORD).await?;
    anyhow::ensure!(
        uid == serde_json::json!(2),
        "Odoo's restore of our zip: authenticate returned {uid}"
    );
    let missing = real.missing_files(copied).await?;
    anyhow::ensure!(
        missing.is_empty(),
        "Odoo's restore of our zip lacks files: {missing:?}"
    );

    // A zip made by Odoo's own manager restores through the platform.
    let odoo_made = manager.backup(db, &real.host(db)).await?;
    let upload = backups.path().join("odoo-made.zip");
    std::fs::write(&upload, &odoo_made)?;
    let odoo_key = format!("{tenant}/odoo-made.zip");
    store.upload_file(&odoo_key, &upload).await?;
    let restore = RestoreOptions::new(tenant, real.base_url(db)?);
    let report = restore_tenant(&real.server, db, &store, &odoo_key, &restore).await?;
    anyhow::ensure!(
        report.replaced_existing && report.filestore_files > 0,
        "{report:?}"
    );
    real.logs_in(db).await?;
    let missing = real.missing_files(db).await?;
    anyhow::ensure!(
        missing.is_empty(),
        "restored from Odoo's zip, lacks files: {missing:?}"
    );
    let mut browser = real.browser(db)?;
    browser
        .first_visit(db, &login, PASSWORD)
        .await?
        .ensure_complete()?;

    // Suspended: RPC refused; resumed: back.
    saas_odoo::suspend_tenant(&real.server, db).await?;
    let uid = real.authenticate(db, db, &login, PASSWORD).await?;
    anyhow::ensure!(!uid.is_number(), "a suspended tenant logged in: {uid}");
    saas_odoo::resume_tenant(&real.server, db).await?;
    real.logs_in(db).await?;

    // Deleted: database and filestore gone, nobody logs in.
    let report = delete_tenant(&real.server, db, None).await?;
    anyhow::ensure!(
        report.dropped_database && report.removed_filestore,
        "{report:?}"
    );
    anyhow::ensure!(!real.server.filestore_dir(db)?.exists());
    let uid = real.authenticate(db, db, &login, PASSWORD).await?;
    anyhow::ensure!(!uid.is_number(), "a deleted tenant logged in: {uid}");
    Ok(())
}

/// Many tenants on one server: each is provisioned, logged into (RPC and
/// web client) and backed up, and nothing fails for want of a connection.
#[tokio::test]
async fn fifty_tenants_log_in_and_back_up_without_connection_errors() -> anyhow::Result<()> {
    let Some(real) = RealOdoo::from_env()? else {
        return Ok(());
    };
    let count: usize = env_or("ODOO_TEST_SCALE", "50").parse()?;
    let mut tenants = Vec::new();
    let outcome = async {
        let started = Instant::now();
        for _ in 0..count {
            tenants.push(real.provision_hashed().await?.0);
        }
        eprintln!("{count} tenants provisioned in {:?}", started.elapsed());
        for db in &tenants {
            real.logs_in(db).await?;
            let mut browser = real.browser(db)?;
            browser
                .first_visit(db, &RealOdoo::login(db), PASSWORD)
                .await
                .with_context(|| format!("{db}: first visit"))?
                .ensure_complete()
                .with_context(|| format!("{db}: first visit"))?;
        }
        let backups = tempfile::tempdir()?;
        let store = BackupStore::from_url(&format!("file://{}", backups.path().display()))?;
        // Four at a time, as WORKER_CONCURRENCY runs them.
        for chunk in tenants.chunks(4) {
            let runs = chunk.iter().map(|db| {
                let store = store.clone();
                let server = real.server.clone();
                async move {
                    backup_tenant(&server, db, &store, &backup_key(db))
                        .await
                        .with_context(|| format!("backup of {db}"))
                }
            });
            for outcome in futures::future::join_all(runs).await {
                outcome?;
            }
        }
        let mut conn = real.connect("postgres").await?;
        let (odoo, total, limit): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE usename = $1), count(*), \
                    current_setting('max_connections')::bigint \
             FROM pg_stat_activity WHERE backend_type = 'client backend'",
        )
        .bind(&real.server.odoo_db_role)
        .fetch_one(&mut conn)
        .await?;
        eprintln!("after {count} tenants: Odoo holds {odoo}, all {total} of {limit} connections");
        anyhow::ensure!(total < limit, "the cluster is full: {total} of {limit}");
        Ok(())
    }
    .await;
    for db in &tenants {
        delete_tenant(&real.server, db, None).await?;
    }
    outcome
}

/// RPC takes the database from the request body, not from the Host: from one
/// tenant's hostname nobody logs into a template or a suspended neighbour.
#[tokio::test]
async fn rpc_cannot_reach_templates_or_suspended_tenants() -> anyhow::Result<()> {
    let Some(real) = RealOdoo::from_env()? else {
        return Ok(());
    };
    let (a, b) = (
        real.provision_hashed().await?.0,
        real.provision_hashed().await?.0,
    );
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

/// A customer's own domain as `web.base.url`: set while Odoo runs (it has
/// the old value cached), frozen, so the admin signing in through the
/// platform host does not move it back; unfrozen, Odoo takes the host it is
/// signed into again.
#[tokio::test]
async fn a_frozen_base_url_survives_the_admin_signing_in() -> anyhow::Result<()> {
    let Some(real) = RealOdoo::from_env()? else {
        return Ok(());
    };
    let (db, tenant) = real.provision_hashed().await?;
    let outcome = async {
        let base_url = async || -> anyhow::Result<String> {
            let mut conn = real.connect(&db).await?;
            Ok(sqlx::query_scalar(
                "SELECT value FROM ir_config_parameter WHERE key = 'web.base.url'",
            )
            .fetch_one(&mut conn)
            .await?)
        };
        let sign_in = async || -> anyhow::Result<()> {
            let uid = real
                .browser(&db)?
                .sign_in(&db, &RealOdoo::login(&db), PASSWORD)
                .await?;
            anyhow::ensure!(uid == 2, "signed in as {uid}");
            Ok(())
        };
        // Odoo caches the parameters its sign-in read: the first sign-in
        // rewrites web.base.url from the host (which clears the cache), the
        // second finds it unchanged and leaves the cache filled.
        sign_in().await?;
        sign_in().await?;
        let domain = Url::parse("https://erp.customer-domain.test")?;
        saas_odoo::set_base_url(&real.server, &db, tenant, &domain, true).await?;
        sign_in().await?;
        anyhow::ensure!(
            base_url().await? == "https://erp.customer-domain.test",
            "the frozen web.base.url moved to {}",
            base_url().await?
        );
        let platform = real.base_url(&db)?;
        saas_odoo::set_base_url(&real.server, &db, tenant, &platform, false).await?;
        sign_in().await?;
        let rewritten = base_url().await?;
        anyhow::ensure!(
            rewritten.starts_with("http://") && rewritten.contains(&db),
            "unfrozen, Odoo takes the host signed into: {rewritten}"
        );
        Ok(())
    }
    .await;
    delete_tenant(&real.server, &db, None).await?;
    outcome
}
