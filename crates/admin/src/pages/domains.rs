//! Every customer's own domain: state, why it is stuck, its certificate
//! and renewals; retry and remove.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::{get, post};
use saas_core::domains::DomainWithTenant;

use super::{Nav, query, render, see_other};
use crate::actions::domains as actions;
use crate::auth::{CsrfForm, PageUser};
use crate::error::PageResult;
use crate::filters;
use crate::params::{PageId, Params};
use crate::repo::Page;
use crate::state::AppState;
use saas_core::domain::DomainState;

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
    page: Page<DomainWithTenant>,
    /// The state shown, or "" for every state.
    state: String,
    states: &'static [DomainState],
    next_link: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    params: Params,
) -> PageResult<Html<String>> {
    let filter = filters::domains(&params)?;
    let page = crate::repo::domains::list(&state.db, &filter).await?;
    let shown = filter
        .state
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default();
    let next_link = page.next_cursor.as_ref().map(|c| {
        format!(
            "/domains?{}",
            query(&[("state", shown.clone()), ("cursor", c.clone())])
        )
    });
    Ok(render(&DomainsPage {
        nav: Nav::new(&user, "domains"),
        page,
        state: shown,
        states: DomainState::ALL,
        next_link,
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
