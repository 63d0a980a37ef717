//! A running admin binary with its own database and Redis prefix, and
//! helpers to drive it like an operator would.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, ensure};
use reqwest::cookie::{CookieStore, Jar};
use saas_testkit::contract::Binary;
use saas_testkit::{ServiceProcess, TestDb, free_port, redis_prefix};
use serde_json::{Value, json};
use uuid::Uuid;

pub const OWNER_EMAIL: &str = "owner@example.com";
pub const OWNER_PASSWORD: &str = "plum-orbit-cedar-42";
pub const ALERT_TOKEN: &str = "alert-token-0123456789abcdef";

pub fn binary() -> Binary {
    Binary::new(env!("CARGO_BIN_EXE_admin"), "ADMIN_PORT")
}

pub struct TestApp {
    pub base: String,
    pub db: TestDb,
    pub pool: sqlx::PgPool,
    pub prefix: String,
    pub env: HashMap<String, String>,
    pub process: ServiceProcess,
}

impl TestApp {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[(&str, &str)]) -> anyhow::Result<Self> {
        let db = TestDb::new("admin").await?;
        let bin = binary();
        let prefix = redis_prefix();
        let mut env = bin.env(&db, free_port()?);
        env.insert("REDIS_KEY_PREFIX".into(), prefix.clone());
        env.insert("ADMIN_BOOTSTRAP_EMAIL".into(), OWNER_EMAIL.into());
        env.insert("ADMIN_BOOTSTRAP_PASSWORD".into(), OWNER_PASSWORD.into());
        env.insert("ALERT_WEBHOOK_TOKEN".into(), ALERT_TOKEN.into());
        env.insert("PUBLIC_SCHEME".into(), "http".into());
        env.insert("BASE_DOMAIN".into(), "saas.test".into());
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let (process, base) = bin.start(&env).await?;
        let pool = db.pool().await?;
        Ok(Self {
            base,
            db,
            pool,
            prefix,
            env,
            process,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A browser-like client: cookies kept, redirects not followed.
    pub fn browser(&self) -> Browser {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Browser {
            base: self.base.clone(),
            client,
            jar,
        }
    }

    /// A browser whose connections come from `ip` (any of 127.0.0.0/8).
    pub fn browser_from(&self, ip: &str) -> anyhow::Result<Browser> {
        let jar = Arc::new(Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .local_address(ip.parse::<std::net::IpAddr>()?)
            .build()?;
        Ok(Browser {
            base: self.base.clone(),
            client,
            jar,
        })
    }

    /// Signs in and returns the browser.
    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<Browser> {
        let browser = self.browser();
        let response = browser.login(email, password).await?;
        ensure!(
            response.status() == 303,
            "login of {email}: {} {}",
            response.status(),
            response.text().await?
        );
        Ok(browser)
    }

    pub async fn owner(&self) -> anyhow::Result<Browser> {
        self.login(OWNER_EMAIL, OWNER_PASSWORD).await
    }

    /// An API token of `browser`'s operator, created through the page.
    pub async fn token(&self, browser: &Browser) -> anyhow::Result<String> {
        let csrf = browser.csrf("/tokens").await?;
        let page = browser
            .post_form("/tokens", &[("_csrf", csrf.as_str()), ("name", "test")])
            .await?
            .text()
            .await?;
        between(&page, "id=\"new-token\">", "<").context("no token shown")
    }

    /// Creates an operator with `role` and returns a signed-in browser for them.
    pub async fn operator(&self, owner_token: &str, role: &str) -> anyhow::Result<Browser> {
        let email = format!("{role}-{}@example.com", saas_testkit::unique_suffix());
        let response = self
            .api(
                owner_token,
                "POST",
                "/api/v1/operators",
                Some(json!({
                    "email": email, "role": role, "password": OWNER_PASSWORD
                })),
            )
            .await?;
        ensure!(response.0 == 201, "create {role}: {response:?}");
        self.login(&email, OWNER_PASSWORD).await
    }

    /// Calls the API; returns status and JSON body (Null when not JSON).
    pub async fn api(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let method: reqwest::Method = method.parse()?;
        let mut request = reqwest::Client::new()
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// An active server on which the worker found `tpl_<template>`.
    pub async fn server_with_template(&self, template: &str) -> anyhow::Result<Uuid> {
        let server = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO servers (id, name, public_url, internal_url, pg_url, filestore_root, capacity)
             VALUES ($1, $2, 'http://odoo.test', 'http://127.0.0.1:9', 'postgres://odoo:secret@127.0.0.1/postgres', '/tmp/filestore', 100)",
        )
        .bind(server)
        .bind(format!("server-{}", saas_testkit::unique_suffix()))
        .execute(&self.pool)
        .await?;
        sqlx::query("INSERT INTO server_templates (server_id, name) VALUES ($1, $2)")
            .bind(server)
            .bind(format!("tpl_{template}"))
            .execute(&self.pool)
            .await?;
        Ok(server)
    }

    /// A server holding `tpl_<template>`, a plan on it, and a customer.
    pub async fn seed(&self, template: &str) -> anyhow::Result<Seed> {
        let server = self.server_with_template(template).await?;
        let plan = Uuid::new_v4();
        let code = format!("p{}", saas_testkit::unique_suffix());
        sqlx::query(
            "INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, max_instances, template)
             VALUES ($1, $2, 'Plan', 5, 1024, 7, 10, $3)",
        )
        .bind(plan)
        .bind(&code)
        .bind(template)
        .execute(&self.pool)
        .await?;
        let customer = Uuid::new_v4();
        let email = format!("c-{}@example.com", saas_testkit::unique_suffix());
        sqlx::query("INSERT INTO customers (id, email, company_name, password_hash) VALUES ($1, $2, 'Acme', 'x')")
            .bind(customer)
            .bind(&email)
            .execute(&self.pool)
            .await?;
        Ok(Seed {
            server,
            plan,
            plan_code: code,
            customer,
            customer_email: email,
        })
    }

    /// Moves a tenant to `state` as the worker would.
    pub async fn set_state(&self, tenant: Uuid, state: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE tenants SET state = $2, deleted_at = CASE WHEN $2 = 'deleted' THEN now() END WHERE id = $1",
        )
        .bind(tenant)
        .bind(state)
        .execute(&self.pool)
        .await?;
        // Operations the worker would have finished.
        sqlx::query("UPDATE operations SET state = 'succeeded', finished_at = now() WHERE tenant_id = $1 AND state = 'queued'")
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn audit_count(&self, action: &str, target: &str) -> anyhow::Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = $1 AND target = $2")
                .bind(action)
                .bind(target)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn redis(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(saas_testkit::redis_url())?;
        Ok(client.get_multiplexed_async_connection().await?)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(saas_testkit::clear_redis_prefix(&prefix));
            }
        })
        .join();
    }
}

#[derive(Debug, Clone)]
pub struct Seed {
    pub server: Uuid,
    pub plan: Uuid,
    pub plan_code: String,
    pub customer: Uuid,
    pub customer_email: String,
}

pub struct Browser {
    pub base: String,
    pub client: reqwest::Client,
    pub jar: Arc<Jar>,
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self.client.get(self.url(path)).send().await?)
    }

    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<reqwest::Response> {
        Ok(self.client.post(self.url(path)).form(form).send().await?)
    }

    /// The CSRF token in the forms of `path`.
    pub async fn csrf(&self, path: &str) -> anyhow::Result<String> {
        let page = self.get(path).await?.text().await?;
        between(&page, "name=\"_csrf\" value=\"", "\"").context("no CSRF field on the page")
    }

    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<reqwest::Response> {
        let csrf = self.csrf("/login").await?;
        self.post_form(
            "/login",
            &[
                ("_csrf", csrf.as_str()),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }

    /// The session cookie's value.
    pub fn session_token(&self) -> Option<String> {
        let url: reqwest::Url = self.base.parse().ok()?;
        let header = self.jar.cookies(&url)?;
        let text = header.to_str().ok()?.to_owned();
        text.split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == "saas_admin_session")
            .map(|(_, v)| v.to_owned())
    }
}

/// The text between `start` and the next `end`.
pub fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(text[from..from + len].trim().to_owned())
}
