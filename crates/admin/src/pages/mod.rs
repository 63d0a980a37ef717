//! Server-rendered pages (askama): usable without JavaScript; a small
//! script only refreshes pages that change by themselves.

mod catalog;
mod customers;
mod dashboard;
mod domains;
mod ops;
mod people;
mod tenants;

use askama::Template;
use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};

use crate::auth::{CurrentOperator, Role};
use crate::error::Error;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/static/admin.css", get(stylesheet))
        .route("/static/admin.js", get(script))
        .merge(dashboard::router())
        .merge(tenants::router())
        .merge(domains::router())
        .merge(customers::router())
        .merge(catalog::router())
        .merge(ops::router())
        .merge(people::router())
}

pub fn render<T: Template>(template: &T) -> Result<Html<String>, Error> {
    template
        .render()
        .map(Html)
        .map_err(|err| Error::Internal(err.into()))
}

/// After a successful form: back to a page (303, so a reload does not repost).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// What the layout needs: who is signed in, their CSRF token, where they are.
pub struct Nav {
    pub email: String,
    pub role: Role,
    pub csrf: String,
    pub section: &'static str,
}

impl Nav {
    pub fn new(user: &CurrentOperator, section: &'static str) -> Self {
        Self {
            email: user.operator.email.clone(),
            role: user.role(),
            csrf: user.csrf_token().to_owned(),
            section,
        }
    }

    pub fn can_write(&self) -> bool {
        self.role >= Role::Operator
    }

    pub fn is_owner(&self) -> bool {
        self.role == Role::Owner
    }

    /// `class="current"` for the section's link.
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section {
            "current"
        } else {
            ""
        }
    }
}

/// `2024-05-01 13:02 UTC`.
pub fn when(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn when_opt(at: &Option<DateTime<Utc>>) -> String {
    at.as_ref().map(when).unwrap_or_else(|| "—".to_owned())
}

pub fn opt(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

/// Bytes as `12.3 MB`.
pub fn bytes(value: &i64) -> String {
    let value = *value as f64;
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut size = value;
    let mut unit = 0;
    while size >= 1024.0 && unit < units.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value} B")
    } else {
        format!("{size:.1} {}", units[unit])
    }
}

/// Percentage of `limit` used, capped at 100 for the bar's width.
pub fn percent(used: f64, limit: f64) -> u32 {
    if limit <= 0.0 {
        return 100;
    }
    ((used / limit) * 100.0).clamp(0.0, 100.0) as u32
}

/// The query string of `pairs` (empty values left out), for links.
pub fn query(pairs: &[(&str, String)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub message: String,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub csrf: String,
    pub email: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "mfa.html")]
pub struct MfaPage {
    pub csrf: String,
    pub error: Option<String>,
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/admin.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/admin.js"),
    )
}
