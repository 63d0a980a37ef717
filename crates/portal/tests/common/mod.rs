//! A portal process against its own database, Redis prefix and backup
//! directory, with customers driven over HTTP like a browser would.

#![allow(dead_code)]

pub mod platform;

use std::collections::HashMap;

use anyhow::{Context, ensure};
use reqwest::redirect::Policy;
use saas_testkit::contract::Binary;
use saas_testkit::{ServiceProcess, TestDb, free_port, redis_prefix};
use sqlx::PgPool;
use uuid::Uuid;

pub const PASSWORD: &str = "plum-orbit-cedar-42";

pub fn binary() -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_portal"), "PORTAL_PORT")
}

pub struct TestApp {
    pub base: String,
    /// The internal metrics listener (`METRICS_PORT`).
    pub metrics: String,
    pub pool: PgPool,
    pub backups_dir: tempfile::TempDir,
    pub trial_plan: Uuid,
    pub small_plan: Uuid,
    pub redis_prefix: String,
    pub process: ServiceProcess,
    pub db: TestDb,
}

pub struct Options {
    pub template: String,
    pub extra_env: Vec<(String, String)>,
    /// Register a server holding the template (no worker runs by default).
    pub server: Option<ServerRow>,
}

pub struct ServerRow {
    pub internal_url: String,
    pub pg_url: String,
    pub role: String,
    pub filestore_root: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            template: "basic".to_owned(),
            extra_env: Vec::new(),
            server: Some(ServerRow {
                internal_url: "http://127.0.0.1:9".to_owned(),
                pg_url: saas_testkit::admin_database_url(),
                role: "odoo".to_owned(),
                filestore_root: "/nonexistent".to_owned(),
            }),
        }
    }
}

impl TestApp {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> anyhow::Result<Self> {
        let db = TestDb::new("portal").await?;
        let pool = db.pool().await?;
        saas_core::db::MIGRATOR.run(&pool).await?;
        let trial_plan = Uuid::new_v4();
        let small_plan = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, max_instances, template, trial_days, price_cents)
             VALUES ($1, 'trial', 'Trial', 10, 2048, 5, 2, $3, 14, 0),
                    ($2, 'small', 'Small', 3, 1024, 7, 2, $3, 0, 1900)",
        )
        .bind(trial_plan)
        .bind(small_plan)
        .bind(&options.template)
        .execute(&pool)
        .await?;
        if let Some(server) = &options.server {
            let server_id = Uuid::new_v4();
            sqlx::query(
                "INSERT INTO servers (id, name, public_url, internal_url, pg_url, odoo_db_role, filestore_root, capacity)
                 VALUES ($1, 'odoo-test', $2, $2, $3, $4, $5, 100)",
            )
            .bind(server_id)
            .bind(&server.internal_url)
            .bind(&server.pg_url)
            .bind(&server.role)
            .bind(&server.filestore_root)
            .execute(&pool)
            .await?;
            sqlx::query("INSERT INTO server_templates (server_id, name) VALUES ($1, $2)")
                .bind(server_id)
                .bind(format!("tpl_{}", options.template))
                .execute(&pool)
                .await?;
        }
        let backups_dir = tempfile::tempdir()?;
        let bin = binary();
        let mut env: HashMap<String, String> = bin.env(&db, free_port()?);
        let prefix = redis_prefix();
        env.insert("REDIS_KEY_PREFIX".into(), prefix.clone());
        env.insert("PUBLIC_SCHEME".into(), "http".into());
        env.insert("BASE_DOMAIN".into(), "saas.test".into());
        env.insert(
            "BACKUP_STORE_URL".into(),
            format!("file://{}", backups_dir.path().display()),
        );
        for (k, v) in options.extra_env {
            env.insert(k, v);
        }
        let (process, base) = bin.start(&env).await?;
        Ok(Self {
            metrics: bin.metrics_base(&env)?,
            base,
            pool,
            backups_dir,
            trial_plan,
            small_plan,
            redis_prefix: prefix,
            process,
            db,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A browser-like client whose connections come from `ip` (any of
    /// 127.0.0.0/8 on Linux), to play several clients' addresses.
    pub fn client_from(ip: &str) -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .local_address(ip.parse::<std::net::IpAddr>()?)
            .build()?)
    }

    /// The browser-like client as a signed-in customer (`email` has an
    /// account with [`PASSWORD`]), connecting from `ip`.
    pub async fn customer_from(&self, email: &str, ip: &str) -> anyhow::Result<Customer> {
        let mut customer = Customer {
            client: Self::client_from(ip)?,
            base: self.base.clone(),
            email: email.to_owned(),
            csrf: String::new(),
        };
        customer.login(PASSWORD).await?;
        Ok(customer)
    }

    /// A browser-like client: keeps cookies, does not follow redirects.
    pub fn client() -> anyhow::Result<reqwest::Client> {
        Ok(reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()?)
    }

    /// The newest email to `to` in the outbox, and the first link in it to `path`.
    pub async fn link_in_outbox(&self, to: &str, path: &str) -> anyhow::Result<String> {
        let emails = saas_core::outbox::list(&self.pool, Some(to), 1, 0).await?;
        let email = emails.first().context("no email in the outbox")?;
        let start = email
            .body_text
            .find(&format!("{}{path}", self.base))
            .with_context(|| format!("no {path} link in {:?}", email.body_text))?;
        let link: String = email.body_text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        Ok(link)
    }

    /// Signs a new customer up, verifies the address and signs in.
    pub async fn customer(&self, email: &str) -> anyhow::Result<Customer> {
        let client = Self::client()?;
        let response = signup(&client, self, email, "Acme Ltd", PASSWORD).await?;
        ensure!(response.status() == 303, "sign-up: {}", response.status());
        let link = self.link_in_outbox(email, "/verify?token=").await?;
        let verified = client.get(&link).send().await?;
        ensure!(verified.status() == 200, "verify: {}", verified.status());
        let mut customer = Customer {
            client,
            base: self.base.clone(),
            email: email.to_owned(),
            csrf: String::new(),
        };
        customer.login(PASSWORD).await?;
        Ok(customer)
    }
}

/// The `name=value` of the `Set-Cookie` for a cookie named `name`, and the
/// whole header.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| (v.split(';').next().unwrap_or("").to_owned(), v.to_owned()))
}

/// The value of the first `csrf_token` hidden field in a page.
pub fn csrf_in(html: &str) -> anyhow::Result<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).context("no csrf_token field")? + marker.len();
    let end = html[start..].find('"').context("unterminated value")?;
    Ok(html[start..start + end].to_owned())
}

pub async fn signup(
    client: &reqwest::Client,
    app: &TestApp,
    email: &str,
    company: &str,
    password: &str,
) -> anyhow::Result<reqwest::Response> {
    let page = client.get(app.url("/signup")).send().await?.text().await?;
    let csrf = csrf_in(&page)?;
    Ok(client
        .post(app.url("/signup"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", email),
            ("company_name", company),
            ("password", password),
        ])
        .send()
        .await?)
}

pub struct Customer {
    pub client: reqwest::Client,
    pub base: String,
    pub email: String,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Customer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn login(&mut self, password: &str) -> anyhow::Result<()> {
        let response = self.try_login(password).await?;
        ensure!(response.status() == 303, "login: {}", response.status());
        let page = self.client.get(self.url("/instances")).send().await?;
        ensure!(page.status() == 200, "instances: {}", page.status());
        self.csrf = csrf_in(&page.text().await?)?;
        Ok(())
    }

    /// One sign-in attempt through the form, as a browser makes it.
    pub async fn try_login(&self, password: &str) -> anyhow::Result<reqwest::Response> {
        let page = self
            .client
            .get(self.url("/login"))
            .send()
            .await?
            .text()
            .await?;
        let csrf = csrf_in(&page)?;
        Ok(self
            .client
            .post(self.url("/login"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", self.email.as_str()),
                ("password", password),
            ])
            .send()
            .await?)
    }

    /// A form POST with the session's CSRF token.
    pub async fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> anyhow::Result<reqwest::Response> {
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", self.csrf.as_str())];
        form.extend_from_slice(fields);
        Ok(self.client.post(self.url(path)).form(&form).send().await?)
    }

    /// A JSON API call with the session cookie and CSRF header.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<reqwest::Response> {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("x-csrf-token", &self.csrf);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Ok(request.send().await?)
    }

    /// Creates an instance through the API; returns its id and operation id.
    pub async fn create_instance(&self, subdomain: &str) -> anyhow::Result<(Uuid, Uuid)> {
        let response = self
            .api(
                reqwest::Method::POST,
                "/api/v1/instances",
                Some(serde_json::json!({ "subdomain": subdomain, "admin_password": PASSWORD })),
            )
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        ensure!(status == 202, "create: {status} {body}");
        let id = body["instance"]["id"].as_str().context("no id")?.parse()?;
        let op = body["operation"]["id"].as_str().context("no op")?.parse()?;
        Ok((id, op))
    }
}

/// A zip with the given entries.
pub fn zip_bytes(entries: &[(&str, &[u8])]) -> anyhow::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut cursor = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut cursor);
        for (name, body) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())?;
            zip.write_all(body)?;
        }
        zip.finish()?;
    }
    Ok(cursor.into_inner())
}

/// Puts a backup object in the store directory and records it.
pub async fn seed_backup(app: &TestApp, tenant: Uuid, body: &[u8]) -> anyhow::Result<Uuid> {
    let key = format!("seed/{}.zip", Uuid::new_v4().simple());
    let path = app.backups_dir.path().join(&key);
    std::fs::create_dir_all(path.parent().context("no parent")?)?;
    std::fs::write(&path, body)?;
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO backups (id, tenant_id, object_key, size_bytes, sha256, kind) VALUES ($1, $2, $3, $4, $5, 'manual')",
    )
    .bind(id)
    .bind(tenant)
    .bind(&key)
    .bind(i64::try_from(body.len())?)
    .bind(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(body)))
    .execute(&app.pool)
    .await?;
    Ok(id)
}

pub async fn set_state(app: &TestApp, tenant: Uuid, state: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE tenants SET state = $2 WHERE id = $1")
        .bind(tenant)
        .bind(state)
        .execute(&app.pool)
        .await?;
    Ok(())
}
