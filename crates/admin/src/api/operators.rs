//! `/api/v1/operators` (owners only), `/api/v1/me` and `/api/v1/tokens`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use saas_core::auth::tokens::{self, Owner};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::actions::operators::{self as actions, NewOperator, OperatorPatch};
use crate::auth::{ApiRole, ApiUser, OWNER};
use crate::error::{Error, Result};
use crate::params::{ApiJson, Id};
use crate::repo;
use crate::state::AppState;

pub async fn me(ApiUser(user): ApiUser) -> Json<Value> {
    Json(json!(user.operator))
}

pub async fn list(
    State(state): State<AppState>,
    ApiRole(_): ApiRole<OWNER>,
) -> Result<Json<Value>> {
    Ok(Json(
        json!({ "items": repo::operators::list(&state.db).await? }),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    ApiRole(_): ApiRole<OWNER>,
    Id(id): Id,
) -> Result<Json<Value>> {
    let row = repo::operators::get(&state.db, id)
        .await?
        .ok_or(Error::NotFound("operator"))?;
    Ok(Json(json!(row)))
}

pub async fn create(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OWNER>,
    ApiJson(body): ApiJson<NewOperator>,
) -> Result<Response> {
    let row = actions::create(&state, &user, body).await?;
    Ok((StatusCode::CREATED, Json(json!(row))).into_response())
}

pub async fn update(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OWNER>,
    Id(id): Id,
    ApiJson(body): ApiJson<OperatorPatch>,
) -> Result<Json<Value>> {
    Ok(Json(json!(actions::update(&state, &user, id, body).await?)))
}

pub async fn list_tokens(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
) -> Result<Json<Value>> {
    let items = tokens::list(&state.db, Owner::Operator, user.id()).await?;
    Ok(Json(json!({ "items": items })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
}

pub async fn create_token(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<Response> {
    let (token, secret) = actions::create_token(&state, &user, &body.name).await?;
    let mut body = json!(token);
    body["token"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn revoke_token(
    State(state): State<AppState>,
    ApiUser(user): ApiUser,
    Id(id): Id,
) -> Result<StatusCode> {
    actions::revoke_token(&state, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
