//! JSON API under `/api/v1`: bearer tokens (`osc_...`) or the session cookie
//! (with `X-CSRF-Token` for changes). Errors are
//! `{"error": {"code", "message", "field"}}`.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Json, Router};
use chrono::Utc;
use saas_core::auth::tokens::{self, Owner};
use saas_core::backups::{self, Backup};
use saas_core::customer_tenants::{self as scoped, Plan};
use saas_core::ops::Operation;
use saas_core::tenants::{self, CreateError, Tenant};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::actions::{self, CreateInstance};
use crate::auth::Api;
use crate::error::AppError;
use crate::extract::ApiQuery;
use crate::routes::api_domains;
use crate::routes::backups::stream_backup;
use crate::routes::instances::parse_id;
use crate::routes::tokens::{create_token, revoke_token};
use crate::state::AppState;

type ApiResult = Result<Response, AppError>;

/// A parameter of an API route, as the OpenAPI document describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// `{id}` in the path: a UUID (anything else answers 404).
    Id,
    /// `{name}` in the path: a subdomain to check.
    Name,
    /// `?confirm=`: the instance's subdomain, typed to confirm.
    Confirm,
    /// `{domain_id}` in the path: the id of one of the instance's own
    /// domains (anything else answers 404).
    DomainId,
}

/// The request body of an API route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// JSON; the name of its schema in `components.schemas`.
    Json(&'static str),
    /// An Odoo backup zip as the raw body (`application/zip`).
    Zip,
}

/// What the OpenAPI document says about one route.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: &'static str,
    /// In axum's (and OpenAPI's) syntax: `/api/v1/instances/{id}`.
    pub path: &'static str,
    pub summary: &'static str,
    pub params: &'static [Param],
    pub body: Option<Body>,
    /// The success status and what it carries.
    pub ok: (u16, &'static str),
    /// Answers that depend on the platform's state rather than the input's
    /// shape (409 for a conflict with it, 422 for a business rule such as a
    /// taken subdomain or a plan over its limits).
    pub refusals: &'static [u16],
}

pub struct ApiRoute {
    pub spec: RouteSpec,
    handler: MethodRouter<AppState>,
}

macro_rules! api {
    ($method:literal $path:literal, $summary:literal, $handler:expr, params = [$($p:ident),*], body = $body:expr, ok = ($status:literal, $what:literal), refusals = [$($r:literal),*]) => {
        ApiRoute {
            spec: RouteSpec {
                method: $method,
                path: $path,
                summary: $summary,
                params: &[$(Param::$p),*],
                body: $body,
                ok: ($status, $what),
                refusals: &[$($r),*],
            },
            handler: on(filter($method), $handler),
        }
    };
}

fn filter(method: &str) -> MethodFilter {
    match method {
        "POST" => MethodFilter::POST,
        "DELETE" => MethodFilter::DELETE,
        _ => MethodFilter::GET,
    }
}

const fn json(schema: &'static str) -> Option<Body> {
    Some(Body::Json(schema))
}

/// Every `/api/v1` route: one table builds the router and the OpenAPI
/// document, so the document lists exactly what is served.
pub fn routes() -> Vec<ApiRoute> {
    vec![
        api!("GET" "/api/v1/plans", "Plans open to new instances", plans, params = [], body = None, ok = (200, "plans"), refusals = []),
        api!("GET" "/api/v1/subdomains/{name}", "Whether a subdomain can be taken (and why not)", subdomain, params = [Name], body = None, ok = (200, "availability"), refusals = []),
        api!("GET" "/api/v1/instances", "Your instances", list, params = [], body = None, ok = (200, "instances"), refusals = []),
        api!("POST" "/api/v1/instances", "Create an instance (provisioned asynchronously)", create, params = [], body = json("NewInstance"), ok = (202, "instance and its provision operation"), refusals = [409, 422]),
        api!("GET" "/api/v1/instances/{id}", "One instance with its recent operations", show, params = [Id], body = None, ok = (200, "instance"), refusals = []),
        api!("DELETE" "/api/v1/instances/{id}", "Delete an instance (final backup kept for the grace period)", delete, params = [Id, Confirm], body = None, ok = (202, "delete operation"), refusals = [409, 422]),
        api!("POST" "/api/v1/instances/{id}/plan", "Change plan (refused with the reason when usage exceeds it)", change_plan, params = [Id], body = json("PlanChange"), ok = (202, "change_plan operation"), refusals = [409, 422]),
        api!("POST" "/api/v1/instances/{id}/admin-password", "Set a new password for the instance's Odoo admin user (its login is `odoo_login` of the instance); the worker writes it within seconds. Repeated while the first request waits, the newest password wins", reset_admin_password, params = [Id], body = json("AdminPassword"), ok = (202, "reset_admin_password operation"), refusals = [409, 422]),
        api!("GET" "/api/v1/instances/{id}/operations", "The instance's operations", operations, params = [Id], body = None, ok = (200, "operations"), refusals = []),
        api!("GET" "/api/v1/instances/{id}/backups", "The instance's backups", list_backups, params = [Id], body = None, ok = (200, "backups"), refusals = []),
        api!("POST" "/api/v1/instances/{id}/backups", "Back up now", backup_now, params = [Id], body = None, ok = (202, "backup operation"), refusals = [409, 422]),
        api!("POST" "/api/v1/instances/{id}/backups/upload", "Upload an Odoo backup zip (dump.sql, filestore/, manifest.json) and restore the instance from it", upload, params = [Id, Confirm], body = Some(Body::Zip), ok = (202, "backup recorded, restore requested"), refusals = [409, 413, 422]),
        api!("GET" "/api/v1/instances/{id}/domains", "The instance's own domains, each with the DNS records to create, its state and why it is stuck", api_domains::list, params = [Id], body = None, ok = (200, "domains"), refusals = []),
        api!("POST" "/api/v1/instances/{id}/domains", "Add an own domain (verified, given a certificate and routed asynchronously); adding one the instance has already returns it", api_domains::add, params = [Id], body = json("NewDomain"), ok = (202, "the domain and its DNS records"), refusals = [409]),
        api!("POST" "/api/v1/instances/{id}/domains/{domain_id}/primary", "Make a domain the primary one: \"Open\" and Odoo's web.base.url use it once it is live", api_domains::make_primary, params = [Id, DomainId], body = None, ok = (202, "the domain"), refusals = [409]),
        api!("DELETE" "/api/v1/instances/{id}/domains/{domain_id}", "Remove a domain: its route and certificate go", api_domains::remove, params = [Id, DomainId], body = None, ok = (202, "the removed domain"), refusals = []),
        api!("GET" "/api/v1/backups/{id}", "One backup", show_backup, params = [Id], body = None, ok = (200, "backup"), refusals = []),
        api!("GET" "/api/v1/backups/{id}/download", "Download a backup zip", download, params = [Id], body = None, ok = (200, "the zip"), refusals = []),
        api!("POST" "/api/v1/backups/{id}/restore", "Restore a backup into its instance", restore, params = [Id], body = json("Confirm"), ok = (202, "restore operation"), refusals = [409, 422]),
        api!("GET" "/api/v1/operations/{id}", "Status of one operation", operation, params = [Id], body = None, ok = (200, "operation"), refusals = []),
        api!("GET" "/api/v1/tokens", "Your API tokens (never their secrets)", list_tokens, params = [], body = None, ok = (200, "tokens"), refusals = []),
        api!("POST" "/api/v1/tokens", "Create a token; its secret is in this response only", new_token, params = [], body = json("NewToken"), ok = (201, "token with secret"), refusals = []),
        api!("DELETE" "/api/v1/tokens/{id}", "Revoke a token", revoke, params = [Id], body = None, ok = (204, "revoked"), refusals = []),
    ]
}

pub fn router(state: &AppState) -> Router<AppState> {
    let upload_limit = usize::try_from(state.settings.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1 << 20);
    routes().into_iter().fold(Router::new(), |router, route| {
        let handler = if route.spec.body == Some(Body::Zip) {
            route
                .handler
                .layer(DefaultBodyLimit::max(upload_limit))
                .layer(axum::middleware::from_fn_with_state(
                    state.settings.upload_timeout,
                    saas_core::edge::timeout::extend,
                ))
        } else {
            route.handler
        };
        router.route(route.spec.path, handler)
    })
}

/// Parses a JSON body; a missing or mistyped field is named.
fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, AppError> {
    crate::extract::json_body(bytes)
}

fn accepted(value: Value) -> Response {
    (StatusCode::ACCEPTED, Json(value)).into_response()
}

fn plan_json(plan: &Plan) -> Value {
    json!({
        "id": plan.id, "code": plan.code, "name": plan.name,
        "max_users": plan.max_users, "max_storage_mb": plan.max_storage_mb,
        "max_backups": plan.max_backups, "max_instances": plan.max_instances,
        "max_domains": plan.max_domains,
        "trial_days": plan.trial_days, "price_cents": plan.price_cents, "currency": plan.currency,
    })
}

/// `live_primary`: the instance's primary domain once it is live, where
/// `url` then points.
fn instance_json(
    state: &AppState,
    tenant: &Tenant,
    plan: Option<&Plan>,
    live_primary: Option<&str>,
) -> Value {
    json!({
        "id": tenant.id,
        "subdomain": tenant.subdomain,
        "state": tenant.state,
        "url": state.open_url(&tenant.subdomain, live_primary),
        "platform_url": state.instance_url(&tenant.subdomain),
        "plan": plan.map(|p| json!({ "id": p.id, "code": p.code, "name": p.name })),
        "trial_ends_at": tenant.trial_ends_at,
        "trial_days_left": scoped::trial_days_left(tenant.trial_ends_at, Utc::now()),
        "suspend_reason": tenant.suspend_reason,
        "usage": {
            "users": tenant.usage_users,
            "storage_bytes": tenant.usage_db_bytes + tenant.usage_filestore_bytes,
            "collected_at": tenant.usage_collected_at,
        },
        "limits": plan.map(|p| json!({ "max_users": p.max_users, "max_storage_mb": p.max_storage_mb })),
        "created_at": tenant.created_at,
        "deleted_at": tenant.deleted_at,
    })
}

fn backup_json(backup: &Backup) -> Value {
    json!({
        "id": backup.id, "instance_id": backup.tenant_id, "kind": backup.kind,
        "size_bytes": backup.size_bytes, "sha256": backup.sha256,
        "created_at": backup.created_at, "expires_at": backup.expires_at,
    })
}

fn operation_json(op: &Operation) -> Value {
    json!({
        "id": op.id, "instance_id": op.tenant_id, "kind": op.kind, "state": op.state,
        "args": op.public_args(), "attempts": op.attempts, "error": op.customer_error_text(),
        "created_at": op.created_at, "started_at": op.started_at, "finished_at": op.finished_at,
    })
}

async fn plan_of(state: &AppState, tenant: &Tenant) -> Result<Option<Plan>, AppError> {
    Ok(scoped::plan(&state.db, &tenant.plan_id.to_string()).await?)
}

async fn plans(State(state): State<AppState>, Api(_who): Api) -> ApiResult {
    let plans = scoped::active_plans(&state.db).await?;
    Ok(Json(json!({ "plans": plans.iter().map(plan_json).collect::<Vec<_>>() })).into_response())
}

async fn subdomain(
    State(state): State<AppState>,
    Api(_who): Api,
    Path(name): Path<String>,
) -> ApiResult {
    let name = name.trim().to_ascii_lowercase();
    let reason = match tenants::subdomain_available(&state.db, &name).await? {
        Ok(()) => None,
        Err(CreateError::Subdomain(e)) => Some(format!("subdomain {e}")),
        Err(CreateError::SubdomainTaken) => Some("this subdomain is already taken".to_owned()),
        Err(e) => Some(e.to_string()),
    };
    Ok(
        Json(json!({ "subdomain": name, "available": reason.is_none(), "reason": reason }))
            .into_response(),
    )
}

async fn list(State(state): State<AppState>, Api(who): Api) -> ApiResult {
    let plans = scoped::active_plans(&state.db).await?;
    let tenants = scoped::list(&state.db, who.customer.id).await?;
    let ids: Vec<uuid::Uuid> = tenants.iter().map(|t| t.id).collect();
    let primaries = saas_core::domains::live_primaries(&state.db, &ids).await?;
    let items: Vec<Value> = tenants
        .iter()
        .map(|t| {
            let plan = plans.iter().find(|p| p.id == t.plan_id);
            instance_json(&state, t, plan, primaries.get(&t.id).map(String::as_str))
        })
        .collect();
    Ok(Json(json!({ "instances": items })).into_response())
}

#[derive(Deserialize)]
struct CreateBody {
    subdomain: String,
    #[serde(default)]
    plan: String,
    admin_password: String,
}

async fn create(State(state): State<AppState>, Api(who): Api, bytes: Bytes) -> ApiResult {
    let input: CreateBody = body(&bytes)?;
    let (tenant, op) = actions::create_instance(
        &state,
        &who,
        &CreateInstance {
            subdomain: &input.subdomain,
            plan: &input.plan,
            admin_password: &input.admin_password,
        },
    )
    .await?;
    let plan = plan_of(&state, &tenant).await?;
    Ok(accepted(json!({
        "instance": instance_json(&state, &tenant, plan.as_ref(), None),
        "operation": operation_json(&op),
    })))
}

async fn show(State(state): State<AppState>, Api(who): Api, Path(id): Path<String>) -> ApiResult {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, true).await?;
    let plan = plan_of(&state, &tenant).await?;
    let ops = scoped::operations(&state.db, tenant.id, 10).await?;
    let pending = ops.iter().filter(|o| !o.state.is_final()).count();
    let primary = saas_core::domains::live_primary(&state.db, tenant.id).await?;
    let mut instance = instance_json(&state, &tenant, plan.as_ref(), primary.as_deref());
    instance["odoo_login"] = json!(scoped::odoo_login(&state.db, tenant.id).await?);
    Ok(Json(json!({
        "instance": instance,
        "pending_operations": pending,
        "operations": ops.iter().map(operation_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ConfirmQuery {
    confirm: String,
}

async fn delete(
    State(state): State<AppState>,
    Api(who): Api,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ConfirmQuery>,
) -> ApiResult {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, false).await?;
    let op = actions::delete(&state, &who, &tenant, &query.confirm).await?;
    Ok(accepted(json!({ "operation": operation_json(&op) })))
}

#[derive(Deserialize)]
struct PlanBody {
    plan: String,
}

async fn change_plan(
    State(state): State<AppState>,
    Api(who): Api,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, false).await?;
    let input: PlanBody = body(&bytes)?;
    let op = actions::change_plan(&state, &who, &tenant, &input.plan).await?;
    Ok(accepted(json!({ "operation": operation_json(&op) })))
}

#[derive(Deserialize)]
struct PasswordBody {
    admin_password: String,
}

async fn reset_admin_password(
    State(state): State<AppState>,
    Api(who): Api,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, false).await?;
    let input: PasswordBody = body(&bytes)?;
    let op = actions::reset_admin_password(&state, &who, &tenant, &input.admin_password).await?;
    Ok(accepted(json!({ "operation": operation_json(&op) })))
}

async fn operations(
    State(state): State<AppState>,
    Api(who): Api,
    Path(id): Path<String>,
) -> ApiResult {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, true).await?;
    let ops = scoped::operations(&state.db, tenant.id, 100).await?;
    Ok(
        Json(json!({ "operations": ops.iter().map(operation_json).collect::<Vec<_>>() }))
            .into_response(),
    )
}

async fn list_backups(
    State(state): State<AppState>,
    Api(who): Api,
    Path(id): Path<String>,
) -> ApiResult {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, true).await?;
    let list = backups::list_for_tenant(&state.db, tenant.id).await?;
    Ok(
        Json(json!({ "backups": list.iter().map(backup_json).collect::<Vec<_>>() }))
            .into_response(),
    )
}

async fn backup_now(
    State(state): State<AppState>,
    Api(who): Api,
    Path(id): Path<String>,
) -> ApiResult {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, false).await?;
    let op = actions::backup_now(&state, &who, &tenant).await?;
    Ok(accepted(json!({ "operation": operation_json(&op) })))
}

/// The zip is the request body (`Content-Type: application/zip`).
async fn upload(
    State(state): State<AppState>,
    Api(who): Api,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ConfirmQuery>,
    request: Request,
) -> ApiResult {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, false).await?;
    if query.confirm.trim() != tenant.subdomain {
        return Err(AppError::invalid(
            "confirm",
            format!(
                "pass ?confirm={} to replace the instance's data",
                tenant.subdomain
            ),
        ));
    }
    let stream = request.into_body().into_data_stream();
    let received = crate::upload::receive(stream, state.settings.max_upload_bytes).await?;
    let (backup, op) =
        actions::upload_and_restore(&state, &who, &tenant, received, &query.confirm).await?;
    Ok(accepted(
        json!({ "backup": backup_json(&backup), "operation": operation_json(&op) }),
    ))
}

async fn show_backup(
    State(state): State<AppState>,
    Api(who): Api,
    Path(id): Path<String>,
) -> ApiResult {
    let backup = actions::backup(&state, &who, parse_id(&id)?).await?;
    Ok(Json(json!({ "backup": backup_json(&backup) })).into_response())
}

async fn download(
    State(state): State<AppState>,
    Api(who): Api,
    Path(id): Path<String>,
) -> ApiResult {
    stream_backup(&state, &who, &id).await
}

#[derive(Deserialize)]
struct RestoreBody {
    confirm: String,
}

async fn restore(
    State(state): State<AppState>,
    Api(who): Api,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let backup = actions::backup(&state, &who, parse_id(&id)?).await?;
    let input: RestoreBody = body(&bytes)?;
    let tenant = actions::instance(&state, &who, backup.tenant_id, false).await?;
    let op = actions::restore(&state, &who, &tenant, &backup, &input.confirm).await?;
    Ok(accepted(json!({ "operation": operation_json(&op) })))
}

async fn operation(
    State(state): State<AppState>,
    Api(who): Api,
    Path(id): Path<String>,
) -> ApiResult {
    let op = actions::operation(&state, &who, parse_id(&id)?).await?;
    Ok(Json(json!({ "operation": operation_json(&op) })).into_response())
}

fn token_json(token: &tokens::ApiToken) -> Value {
    json!({
        "id": token.id, "name": token.name, "created_at": token.created_at,
        "last_used_at": token.last_used_at, "revoked_at": token.revoked_at,
    })
}

async fn list_tokens(State(state): State<AppState>, Api(who): Api) -> ApiResult {
    let list = tokens::list(&state.db, Owner::Customer, who.customer.id).await?;
    Ok(Json(json!({ "tokens": list.iter().map(token_json).collect::<Vec<_>>() })).into_response())
}

#[derive(Deserialize)]
struct TokenBody {
    name: String,
}

async fn new_token(State(state): State<AppState>, Api(who): Api, bytes: Bytes) -> ApiResult {
    let input: TokenBody = body(&bytes)?;
    let (token, secret) = create_token(&state, &who, &input.name).await?;
    let mut value = token_json(&token);
    value["secret"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(json!({ "token": value }))).into_response())
}

async fn revoke(State(state): State<AppState>, Api(who): Api, Path(id): Path<String>) -> ApiResult {
    revoke_token(&state, &who, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
