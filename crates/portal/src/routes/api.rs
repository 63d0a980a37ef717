//! JSON API under `/api/v1`: bearer tokens (`osc_...`) or the session cookie
//! (with `X-CSRF-Token` for changes). Errors are
//! `{"error": {"code", "message", "field"}}`.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
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
use crate::routes::backups::stream_backup;
use crate::routes::instances::parse_id;
use crate::routes::tokens::{create_token, revoke_token};
use crate::state::AppState;

type ApiResult = Result<Response, AppError>;

pub fn router(state: &AppState) -> Router<AppState> {
    let upload_limit = usize::try_from(state.settings.max_upload_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1 << 20);
    Router::new()
        .route("/api/v1/plans", get(plans))
        .route("/api/v1/subdomains/{name}", get(subdomain))
        .route("/api/v1/instances", get(list).post(create))
        .route("/api/v1/instances/{id}", get(show).delete(delete))
        .route("/api/v1/instances/{id}/plan", post(change_plan))
        .route(
            "/api/v1/instances/{id}/admin-password",
            post(reset_admin_password),
        )
        .route("/api/v1/instances/{id}/operations", get(operations))
        .route(
            "/api/v1/instances/{id}/backups",
            get(list_backups).post(backup_now),
        )
        .route(
            "/api/v1/instances/{id}/backups/upload",
            post(upload)
                .layer(DefaultBodyLimit::max(upload_limit))
                .layer(axum::middleware::from_fn_with_state(
                    state.settings.upload_timeout,
                    saas_core::edge::timeout::extend,
                )),
        )
        .route("/api/v1/backups/{id}", get(show_backup))
        .route("/api/v1/backups/{id}/download", get(download))
        .route("/api/v1/backups/{id}/restore", post(restore))
        .route("/api/v1/operations/{id}", get(operation))
        .route("/api/v1/tokens", get(list_tokens).post(new_token))
        .route("/api/v1/tokens/{id}", axum::routing::delete(revoke))
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
        "trial_days": plan.trial_days, "price_cents": plan.price_cents, "currency": plan.currency,
    })
}

fn instance_json(state: &AppState, tenant: &Tenant, plan: Option<&Plan>) -> Value {
    json!({
        "id": tenant.id,
        "subdomain": tenant.subdomain,
        "state": tenant.state,
        "url": state.instance_url(&tenant.subdomain),
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
    let items: Vec<Value> = tenants
        .iter()
        .map(|t| instance_json(&state, t, plans.iter().find(|p| p.id == t.plan_id)))
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
        "instance": instance_json(&state, &tenant, plan.as_ref()),
        "operation": operation_json(&op),
    })))
}

async fn show(State(state): State<AppState>, Api(who): Api, Path(id): Path<String>) -> ApiResult {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, true).await?;
    let plan = plan_of(&state, &tenant).await?;
    let ops = scoped::operations(&state.db, tenant.id, 10).await?;
    let pending = ops.iter().filter(|o| !o.state.is_final()).count();
    let mut instance = instance_json(&state, &tenant, plan.as_ref());
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
