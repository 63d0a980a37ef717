//! Operations (filter, retry, cancel), queues and workers, the audit log.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::{Html, Response};
use axum::routing::{get, post};
use saas_core::ops::workers::WorkerInfo;

use super::{Nav, query, render, see_other};
use crate::actions::operations as actions;
use crate::api::{csv_response, live_workers};
use crate::auth::{CsrfForm, PageUser};
use crate::error::PageResult;
use crate::filters;
use crate::params::{PageId, Params};
use crate::repo::{self, Page, audit::AuditRow, operations::OperationItem};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/operations", get(operations))
        .route("/operations/{id}/retry", post(retry))
        .route("/operations/{id}/cancel", post(cancel))
        .route("/queues", get(queues))
        .route("/audit", get(audit))
        .route("/audit.csv", get(audit_csv))
}

#[derive(Template)]
#[template(path = "operations.html")]
struct OperationsPage {
    nav: Nav,
    page: Page<OperationItem>,
    state: String,
    kind: String,
    tenant: String,
    states: Vec<&'static str>,
    kinds: Vec<&'static str>,
    next_link: Option<String>,
}

async fn operations(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    params: Params,
) -> PageResult<Html<String>> {
    let filter = filters::operations(&params)?;
    let page = repo::operations::list(&state.db, &filter).await?;
    let get = |name: &str| params.get(name).unwrap_or("").to_owned();
    let next_link = page.next_cursor.as_ref().map(|c| {
        format!(
            "/operations?{}",
            query(&[
                ("state", get("state")),
                ("kind", get("kind")),
                ("tenant", get("tenant")),
                ("cursor", c.clone())
            ])
        )
    });
    Ok(render(&OperationsPage {
        nav: Nav::new(&user, "operations"),
        page,
        state: get("state"),
        kind: get("kind"),
        tenant: get("tenant"),
        states: saas_core::ops::OperationState::ALL
            .iter()
            .map(|s| s.as_str())
            .collect(),
        kinds: saas_core::ops::OperationKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect(),
        next_link,
    })?)
}

async fn retry(
    State(state): State<AppState>,
    PageId(id): PageId,
    CsrfForm(user, form): CsrfForm,
) -> PageResult {
    actions::retry(&state, &user, id, form.get("reason").unwrap_or("")).await?;
    Ok(see_other("/operations"))
}

async fn cancel(
    State(state): State<AppState>,
    PageId(id): PageId,
    CsrfForm(user, form): CsrfForm,
) -> PageResult {
    actions::cancel(&state, &user, id, form.get("reason").unwrap_or("")).await?;
    Ok(see_other("/operations"))
}

/// A worker with its heartbeat's age, for display.
struct WorkerView {
    info: WorkerInfo,
    age_secs: i64,
}

#[derive(Template)]
#[template(path = "queues.html")]
struct QueuesPage {
    nav: Nav,
    queue_name: String,
    depth: i64,
    workers: Option<Vec<WorkerView>>,
    failed: Vec<OperationItem>,
}

async fn queues(
    State(state): State<AppState>,
    PageUser(user): PageUser,
) -> PageResult<Html<String>> {
    let now = chrono::Utc::now();
    let workers = live_workers(&state).await.map(|list| {
        list.into_iter()
            .map(|info| WorkerView {
                age_secs: (now - info.heartbeat_at).num_seconds(),
                info,
            })
            .collect()
    });
    let failed = repo::operations::latest_failed(&state.db).await?;
    Ok(render(&QueuesPage {
        nav: Nav::new(&user, "queues"),
        queue_name: format!("{}operations", state.redis.prefix()),
        depth: saas_core::ops::store::queue_depth(&state.db).await?,
        workers,
        failed,
    })?)
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    nav: Nav,
    page: Page<AuditRow>,
    actor: String,
    action: String,
    target: String,
    since: String,
    until: String,
    next_link: Option<String>,
    csv_link: String,
}

async fn audit(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    params: Params,
) -> PageResult<Html<String>> {
    let filter = filters::audit(&params, filters::MAX_LIMIT)?;
    let page = repo::audit::list(&state.db, &filter).await?;
    let get = |name: &str| params.get(name).unwrap_or("").to_owned();
    let base = vec![
        ("actor", get("actor")),
        ("action", get("action")),
        ("target", get("target")),
        ("since", get("since")),
        ("until", get("until")),
    ];
    let next_link = page.next_cursor.as_ref().map(|c| {
        let mut pairs = base.clone();
        pairs.push(("cursor", c.clone()));
        format!("/audit?{}", query(&pairs))
    });
    Ok(render(&AuditPage {
        nav: Nav::new(&user, "audit"),
        page,
        actor: get("actor"),
        action: get("action"),
        target: get("target"),
        since: get("since"),
        until: get("until"),
        next_link,
        csv_link: format!("/audit.csv?{}", query(&base)),
    })?)
}

async fn audit_csv(
    State(state): State<AppState>,
    PageUser(_): PageUser,
    params: Params,
) -> PageResult<Response> {
    Ok(csv_response(&state, &params).await?)
}
