//! Every customer's own domain: state, why it is stuck, its certificate
//! and renewals; retry and remove.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::{get, post};
use saas_core::domains::DomainWithTenant;

use super::{Nav, render, see_other};
use crate::actions::domains as actions;
use crate::api::domains::LIST_LIMIT;
use crate::auth::{CsrfForm, PageUser};
use crate::error::PageResult;
use crate::params::PageId;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/domains", get(list))
        .route("/domains/{id}/retry", post(retry))
        .route("/domains/{id}/remove", post(remove))
}

#[derive(Template)]
#[template(path = "domains.html")]
struct DomainsPage {
    nav: Nav,
    items: Vec<DomainWithTenant>,
    limit: i64,
}

async fn list(State(state): State<AppState>, PageUser(user): PageUser) -> PageResult<Html<String>> {
    let items = saas_core::domains::list_all(&state.db, LIST_LIMIT).await?;
    Ok(render(&DomainsPage {
        nav: Nav::new(&user, "domains"),
        items,
        limit: LIST_LIMIT,
    })?)
}

async fn retry(
    State(state): State<AppState>,
    PageId(id): PageId,
    CsrfForm(user, form): CsrfForm,
) -> PageResult {
    actions::retry(&state, &user, id, form.get("reason").unwrap_or("")).await?;
    Ok(see_other("/domains"))
}

async fn remove(
    State(state): State<AppState>,
    PageId(id): PageId,
    CsrfForm(user, form): CsrfForm,
) -> PageResult {
    actions::remove(&state, &user, id, form.get("reason").unwrap_or("")).await?;
    Ok(see_other("/domains"))
}
