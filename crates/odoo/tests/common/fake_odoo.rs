//! A local HTTP server that answers `/web/login` like Odoo with `dbfilter = ^%d$`:
//! 200 when the first label of the Host names a database that exists and is
//! configured, 404 otherwise. It records every Host it was asked for.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use sqlx::Connection as _;
use url::Url;

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

pub struct FakeOdoo {
    pub url: Url,
    seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl FakeOdoo {
    pub async fn start() -> anyhow::Result<FakeOdoo> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = Url::parse(&format!("http://{}", listener.local_addr()?))?;
        let seen = Seen::default();
        let app = axum::Router::new()
            .route("/web/login", get(login))
            .with_state(seen.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeOdoo { url, seen, task })
    }

    /// Hosts asked for so far.
    pub fn hosts(&self) -> Vec<String> {
        self.seen.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Drop for FakeOdoo {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn login(State(seen): State<Seen>, headers: HeaderMap) -> StatusCode {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if let Ok(mut hosts) = seen.0.lock() {
        hosts.push(host.clone());
    }
    let db = host.split('.').next().unwrap_or_default().to_owned();
    match configured(&db).await {
        Ok(true) => StatusCode::OK,
        _ => StatusCode::NOT_FOUND,
    }
}

async fn configured(db: &str) -> anyhow::Result<bool> {
    if db.is_empty() || !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ok(false);
    }
    let mut conn = sqlx::PgConnection::connect(&saas_testkit::database_url(db)?).await?;
    let marker: Option<String> =
        sqlx::query_scalar("SELECT value FROM ir_config_parameter WHERE key = 'saas.provisioned'")
            .fetch_optional(&mut conn)
            .await?;
    Ok(marker.is_some())
}
