//! Plans and servers: lists, create and edit forms, delete.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::{get, post};

use super::{Nav, render, see_other};
use crate::actions::catalog::{self as actions, PlanPatch, ServerPatch};
use crate::auth::{CsrfForm, PageUser};
use crate::error::{Error, PageResult};
use crate::params::PageId;
use crate::repo::{
    self,
    plans::PlanRow,
    servers::{ServerRow, Template as ServerTemplate},
};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plans", get(plans).post(create_plan))
        .route("/plans/{id}", get(plan).post(update_plan))
        .route("/plans/{id}/delete", post(delete_plan))
        .route("/servers", get(servers).post(create_server))
        .route("/servers/{id}", get(server).post(update_server))
        .route("/servers/{id}/delete", post(delete_server))
}

#[derive(Template)]
#[template(path = "plans.html")]
struct PlansPage {
    nav: Nav,
    plans: Vec<PlanRow>,
    /// Templates found on the servers, for the new plan's picker.
    templates: Vec<String>,
}

async fn plans(
    State(state): State<AppState>,
    PageUser(user): PageUser,
) -> PageResult<Html<String>> {
    Ok(render(&PlansPage {
        nav: Nav::new(&user, "plans"),
        plans: repo::plans::list(&state.db).await?,
        templates: repo::plans::available_templates(&state.db).await?,
    })?)
}

async fn create_plan(State(state): State<AppState>, CsrfForm(user, form): CsrfForm) -> PageResult {
    let id = actions::save_plan(&state, &user, None, PlanPatch::from_params(&form)?).await?;
    Ok(see_other(&format!("/plans/{id}")))
}

#[derive(Template)]
#[template(path = "plan.html")]
struct PlanPage {
    nav: Nav,
    /// Templates found on the servers; the plan's own is added (marked
    /// missing) when no server holds it.
    templates: Vec<TemplateChoice>,
    plan: PlanRow,
}

struct TemplateChoice {
    name: String,
    selected: bool,
    missing: bool,
}

async fn plan(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    PageId(id): PageId,
) -> PageResult<Html<String>> {
    let plan = repo::plans::get(&state.db, id)
        .await?
        .ok_or(Error::NotFound("plan"))?;
    let mut templates: Vec<TemplateChoice> = repo::plans::available_templates(&state.db)
        .await?
        .into_iter()
        .map(|name| TemplateChoice {
            selected: name == plan.template,
            name,
            missing: false,
        })
        .collect();
    if !templates.iter().any(|t| t.selected) {
        templates.insert(
            0,
            TemplateChoice {
                name: plan.template.clone(),
                selected: true,
                missing: true,
            },
        );
    }
    Ok(render(&PlanPage {
        nav: Nav::new(&user, "plans"),
        templates,
        plan,
    })?)
}

async fn update_plan(
    State(state): State<AppState>,
    PageId(id): PageId,
    CsrfForm(user, form): CsrfForm,
) -> PageResult {
    actions::save_plan(&state, &user, Some(id), PlanPatch::from_params(&form)?).await?;
    Ok(see_other(&format!("/plans/{id}")))
}

async fn delete_plan(
    State(state): State<AppState>,
    PageId(id): PageId,
    CsrfForm(user, _): CsrfForm,
) -> PageResult {
    actions::delete_plan(&state, &user, id).await?;
    Ok(see_other("/plans"))
}

#[derive(Template)]
#[template(path = "servers.html")]
struct ServersPage {
    nav: Nav,
    servers: Vec<ServerRow>,
}

async fn servers(
    State(state): State<AppState>,
    PageUser(user): PageUser,
) -> PageResult<Html<String>> {
    Ok(render(&ServersPage {
        nav: Nav::new(&user, "servers"),
        servers: repo::servers::list(&state.db).await?,
    })?)
}

async fn create_server(
    State(state): State<AppState>,
    CsrfForm(user, form): CsrfForm,
) -> PageResult {
    let id = actions::save_server(&state, &user, None, ServerPatch::from_params(&form)?).await?;
    Ok(see_other(&format!("/servers/{id}")))
}

#[derive(Template)]
#[template(path = "server.html")]
struct ServerPage {
    nav: Nav,
    server: ServerRow,
    templates: Vec<ServerTemplate>,
    fill_pct: u32,
}

async fn server(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    PageId(id): PageId,
) -> PageResult<Html<String>> {
    let server = repo::servers::get(&state.db, id)
        .await?
        .ok_or(Error::NotFound("server"))?;
    Ok(render(&ServerPage {
        nav: Nav::new(&user, "servers"),
        templates: repo::servers::templates(&state.db, id).await?,
        fill_pct: super::percent(server.tenant_count as f64, f64::from(server.capacity)),
        server,
    })?)
}

async fn update_server(
    State(state): State<AppState>,
    PageId(id): PageId,
    CsrfForm(user, form): CsrfForm,
) -> PageResult {
    actions::save_server(&state, &user, Some(id), ServerPatch::from_params(&form)?).await?;
    Ok(see_other(&format!("/servers/{id}")))
}

async fn delete_server(
    State(state): State<AppState>,
    PageId(id): PageId,
    CsrfForm(user, _): CsrfForm,
) -> PageResult {
    actions::delete_server(&state, &user, id).await?;
    Ok(see_other("/servers"))
}
