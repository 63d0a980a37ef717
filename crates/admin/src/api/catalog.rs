//! `/api/v1/plans` and `/api/v1/servers`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::actions::catalog::{self as actions, PlanPatch, ServerPatch};
use crate::auth::{ApiRole, ApiUser, OPERATOR, OWNER};
use crate::error::{Error, Result};
use crate::params::{ApiJson, Id};
use crate::repo;
use crate::state::AppState;

pub async fn list_plans(State(state): State<AppState>, ApiUser(_): ApiUser) -> Result<Json<Value>> {
    Ok(Json(
        json!({ "items": repo::plans::list(&state.db).await? }),
    ))
}

pub async fn get_plan(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    Id(id): Id,
) -> Result<Json<Value>> {
    let plan = repo::plans::get(&state.db, id)
        .await?
        .ok_or(Error::NotFound("plan"))?;
    Ok(Json(json!(plan)))
}

pub async fn create_plan(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OPERATOR>,
    ApiJson(patch): ApiJson<PlanPatch>,
) -> Result<Response> {
    let id = actions::save_plan(&state, &user, None, patch).await?;
    let plan = repo::plans::get(&state.db, id).await?;
    Ok((StatusCode::CREATED, Json(json!(plan))).into_response())
}

pub async fn update_plan(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OPERATOR>,
    Id(id): Id,
    ApiJson(patch): ApiJson<PlanPatch>,
) -> Result<Json<Value>> {
    actions::save_plan(&state, &user, Some(id), patch).await?;
    Ok(Json(json!(repo::plans::get(&state.db, id).await?)))
}

pub async fn delete_plan(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OPERATOR>,
    Id(id): Id,
) -> Result<StatusCode> {
    actions::delete_plan(&state, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_servers(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
) -> Result<Json<Value>> {
    Ok(Json(
        json!({ "items": repo::servers::list(&state.db).await? }),
    ))
}

pub async fn get_server(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    Id(id): Id,
) -> Result<Json<Value>> {
    let server = repo::servers::get(&state.db, id)
        .await?
        .ok_or(Error::NotFound("server"))?;
    let templates = repo::servers::templates(&state.db, id).await?;
    let mut body = json!(server);
    body["templates"] = json!(templates);
    Ok(Json(body))
}

pub async fn create_server(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OWNER>,
    ApiJson(patch): ApiJson<ServerPatch>,
) -> Result<Response> {
    let id = actions::save_server(&state, &user, None, patch).await?;
    let server = repo::servers::get(&state.db, id).await?;
    Ok((StatusCode::CREATED, Json(json!(server))).into_response())
}

pub async fn update_server(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OWNER>,
    Id(id): Id,
    ApiJson(patch): ApiJson<ServerPatch>,
) -> Result<Json<Value>> {
    actions::save_server(&state, &user, Some(id), patch).await?;
    Ok(Json(json!(repo::servers::get(&state.db, id).await?)))
}

pub async fn delete_server(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OWNER>,
    Id(id): Id,
) -> Result<StatusCode> {
    actions::delete_server(&state, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
