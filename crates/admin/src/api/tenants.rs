//! `/api/v1/tenants`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::actions::tenants::{self as actions, ChangeBody, NewTenantBody};
use crate::auth::{ApiRole, ApiUser, OPERATOR};
use crate::error::{Error, Result};
use crate::filters;
use crate::params::{ApiJson, Id, Params};
use crate::repo;
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    params: Params,
) -> Result<Response> {
    let filter = filters::tenants(&params)?;
    Ok(Json(repo::tenants::list(&state.db, &filter).await?).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OPERATOR>,
    ApiJson(body): ApiJson<NewTenantBody>,
) -> Result<Response> {
    let created = actions::create(&state, &user, body).await?;
    let mut body = json!({ "tenant": created.tenant, "operation": created.operation });
    if let Some(password) = created.generated_password {
        body["admin_password"] = json!(password);
    }
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    Id(id): Id,
) -> Result<Json<Value>> {
    let detail = repo::tenants::detail(&state.db, id, &state.public)
        .await?
        .ok_or(Error::NotFound("tenant"))?;
    Ok(Json(json!(detail)))
}

pub async fn operations(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    Id(id): Id,
) -> Result<Json<Value>> {
    require_tenant(&state, id).await?;
    let items = repo::tenants::operations(&state.db, id, 200).await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn backups(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    Id(id): Id,
) -> Result<Json<Value>> {
    require_tenant(&state, id).await?;
    let items = repo::tenants::backups(&state.db, id).await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn audit(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    Id(id): Id,
) -> Result<Json<Value>> {
    require_tenant(&state, id).await?;
    let page = repo::audit::list(
        &state.db,
        &repo::audit::Filter {
            target: Some(format!("tenant:{id}")),
            limit: 200,
            ..Default::default()
        },
    )
    .await?;
    Ok(Json(json!(page)))
}

pub async fn download_backup(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OPERATOR>,
    crate::params::Segments((id, backup)): crate::params::Segments<(String, String)>,
) -> Result<Response> {
    let (Ok(id), Ok(backup)) = (id.parse(), backup.parse()) else {
        return Err(Error::NotFound("backup"));
    };
    crate::backups::download(&state, &user, id, backup).await
}

async fn require_tenant(state: &AppState, id: uuid::Uuid) -> Result<()> {
    saas_core::tenants::get(&state.db, id)
        .await?
        .map(|_| ())
        .ok_or(Error::NotFound("tenant"))
}

async fn change(
    state: AppState,
    user: crate::auth::CurrentOperator,
    id: uuid::Uuid,
    action: &str,
    body: ChangeBody,
) -> Result<Response> {
    let change = body.change(action)?;
    let requested = actions::request(&state, &user, id, change, &body.reason).await?;
    let status = if requested.created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "operation": requested.operation, "created": requested.created })),
    )
        .into_response())
}

macro_rules! change_handler {
    ($name:ident, $action:literal) => {
        pub async fn $name(
            State(state): State<AppState>,
            ApiRole(user): ApiRole<OPERATOR>,
            Id(id): Id,
            ApiJson(body): ApiJson<ChangeBody>,
        ) -> Result<Response> {
            change(state, user, id, $action, body).await
        }
    };
}

change_handler!(suspend, "suspend");
change_handler!(resume, "resume");
change_handler!(backup, "backup");
change_handler!(restore, "restore");
change_handler!(change_plan, "change-plan");
change_handler!(delete, "delete");
