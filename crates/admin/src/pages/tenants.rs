//! Tenants: list with search, filters and keyset pages; a tenant's page with
//! usage, backups, operations, audit and action forms; creation.

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use saas_core::ops::Operation;
use serde_json::json;

use super::{Nav, query, render, see_other};
use crate::actions::tenants::{self as actions, Change, NewTenantBody};
use crate::auth::{CsrfForm, PageUser};
use crate::error::{Error, PageResult};
use crate::filters;
use crate::params::{PageId, Params, Segments};
use crate::repo::{
    self, Choice, Page,
    audit::AuditRow,
    plans::PlanRow,
    tenants::{Backup, TenantDetail, TenantItem},
};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tenants", get(list).post(create))
        .route("/tenants/new", get(new_form))
        .route("/tenants/{id}", get(detail))
        .route("/tenants/{id}/live", get(live))
        .route("/tenants/{id}/backups/{backup}", get(download_backup))
        .route("/tenants/{id}/actions/{action}", post(act))
}

#[derive(Template)]
#[template(path = "tenants.html")]
struct TenantsPage {
    nav: Nav,
    page: Page<TenantItem>,
    q: String,
    state: String,
    plan: String,
    server: String,
    sort: String,
    plans: Vec<Choice>,
    servers: Vec<Choice>,
    states: &'static [&'static str],
    next_link: Option<String>,
}

const STATES: &[&str] = &[
    "pending",
    "provisioning",
    "active",
    "suspended",
    "failed",
    "deleting",
    "deleted",
];

async fn list(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    params: Params,
) -> PageResult<Html<String>> {
    let filter = filters::tenants(&params)?;
    let page = repo::tenants::list(&state.db, &filter).await?;
    let (plans, servers) = repo::choices(&state.db).await?;
    let get = |name: &str| params.get(name).unwrap_or("").to_owned();
    let base = [
        ("q", get("q")),
        ("state", get("state")),
        ("plan", get("plan")),
        ("server", get("server")),
        ("sort", get("sort")),
        ("limit", get("limit")),
    ];
    let next_link = page.next_cursor.as_ref().map(|cursor| {
        let mut pairs = base.to_vec();
        pairs.push(("cursor", cursor.clone()));
        format!("/tenants?{}", query(&pairs))
    });
    Ok(render(&TenantsPage {
        nav: Nav::new(&user, "tenants"),
        page,
        q: get("q"),
        state: get("state"),
        plan: get("plan"),
        server: get("server"),
        sort: filter.sort.as_str().to_owned(),
        plans,
        servers,
        states: STATES,
        next_link,
    })?)
}

#[derive(Template)]
#[template(path = "tenant_new.html")]
struct NewTenantPage {
    nav: Nav,
    plans: Vec<PlanRow>,
    customer: String,
}

async fn new_form(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    params: Params,
) -> PageResult<Html<String>> {
    Ok(render(&NewTenantPage {
        nav: Nav::new(&user, "tenants"),
        plans: repo::plans::list(&state.db).await?,
        customer: params.get("customer").unwrap_or("").to_owned(),
    })?)
}

#[derive(Template)]
#[template(path = "tenant_created.html")]
struct CreatedPage {
    nav: Nav,
    id: uuid::Uuid,
    subdomain: String,
    password: Option<String>,
}

async fn create(State(state): State<AppState>, CsrfForm(user, form): CsrfForm) -> PageResult {
    let created = actions::create(&state, &user, NewTenantBody::from_params(&form)).await?;
    Ok(render(&CreatedPage {
        nav: Nav::new(&user, "tenants"),
        id: created.tenant.id,
        subdomain: created.tenant.subdomain,
        password: created.generated_password,
    })?
    .into_response())
}

#[derive(Template)]
#[template(path = "tenant.html")]
struct TenantPage {
    nav: Nav,
    t: TenantDetail,
    backups: Vec<Backup>,
    operations: Vec<Operation>,
    audit: Vec<AuditRow>,
    plans: Vec<PlanRow>,
    storage_used: i64,
    storage_pct: u32,
    users_pct: u32,
    done: Option<String>,
    simple_actions: &'static [(&'static str, &'static str)],
}

impl TenantPage {
    /// Whether the tenant's state allows `action` (its form is shown only then).
    fn allows(&self, action: &str) -> bool {
        let Some(kind) = actions::kind_of(action) else {
            return false;
        };
        let (allowed, _) = saas_core::ops::precondition(kind);
        self.t
            .tenant
            .state()
            .is_some_and(|state| allowed.contains(&state))
    }
}

async fn detail(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    PageId(id): PageId,
    params: Params,
) -> PageResult<Html<String>> {
    let t = repo::tenants::detail(&state.db, id, &state.public)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    let audit = repo::audit::list(
        &state.db,
        &repo::audit::Filter {
            target: Some(format!("tenant:{id}")),
            limit: 50,
            ..Default::default()
        },
    )
    .await?
    .items;
    let storage_used = t.tenant.usage_db_bytes + t.tenant.usage_filestore_bytes;
    let storage_pct = super::percent(
        storage_used as f64,
        f64::from(t.plan.max_storage_mb) * 1024.0 * 1024.0,
    );
    let users_pct = super::percent(f64::from(t.tenant.usage_users), f64::from(t.plan.max_users));
    Ok(render(&TenantPage {
        nav: Nav::new(&user, "tenants"),
        backups: repo::tenants::backups(&state.db, id).await?,
        operations: repo::tenants::operations(&state.db, id, 50).await?,
        audit,
        plans: repo::plans::list(&state.db).await?,
        storage_used,
        storage_pct,
        users_pct,
        done: params.get("done").map(str::to_owned),
        simple_actions: &[
            ("suspend", "Suspend"),
            ("resume", "Resume"),
            ("backup", "Back up now"),
            ("delete", "Delete"),
        ],
        t,
    })?)
}

/// The tenant's state and latest operations, polled by the tenant page.
async fn live(
    State(state): State<AppState>,
    PageUser(_): PageUser,
    PageId(id): PageId,
) -> PageResult<Response> {
    let tenant = saas_core::tenants::get(&state.db, id)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    let operations = repo::tenants::operations(&state.db, id, 5).await?;
    Ok(Json(json!({ "state": tenant.state, "operations": operations })).into_response())
}

async fn download_backup(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    Segments((id, backup)): Segments<(String, String)>,
) -> PageResult {
    let (Ok(id), Ok(backup)) = (id.parse(), backup.parse()) else {
        return Err(Error::NotFound("backup").into());
    };
    Ok(crate::backups::download(&state, &user, id, backup).await?)
}

async fn act(
    State(state): State<AppState>,
    Segments((id, action)): Segments<(String, String)>,
    CsrfForm(user, form): CsrfForm,
) -> PageResult {
    let id: uuid::Uuid = id.parse().map_err(|_| Error::NotFound("tenant"))?;
    if !form.flag("confirm") {
        return Err(Error::invalid("confirm", "tick the box to confirm").into());
    }
    let change = Change::from_params(&action, &form)?;
    let requested =
        actions::request(&state, &user, id, change, form.get("reason").unwrap_or("")).await?;
    let done = format!(
        "{} requested (operation {})",
        requested.operation.kind, requested.operation.id
    );
    Ok(see_other(&format!(
        "/tenants/{id}?{}",
        query(&[("done", done)])
    )))
}
