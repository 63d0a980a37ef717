//! The dashboard: tenants by state, operations in 24 h, queue, workers, alerts.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;

use super::{Nav, render};
use crate::api::live_workers;
use crate::auth::PageUser;
use crate::error::PageResult;
use crate::repo::{self, alerts::AlertRow, dashboard::Counts};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(dashboard))
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    nav: Nav,
    counts: Counts,
    workers: Option<usize>,
    alerts: Vec<AlertRow>,
}

async fn dashboard(
    State(state): State<AppState>,
    PageUser(user): PageUser,
) -> PageResult<Html<String>> {
    let counts = repo::dashboard::counts(&state.db).await?;
    let alerts = repo::alerts::recent(&state.db, 20).await?;
    let workers = live_workers(&state).await.map(|w| w.len());
    Ok(render(&DashboardPage {
        nav: Nav::new(&user, "dashboard"),
        counts,
        workers,
        alerts,
    })?)
}
