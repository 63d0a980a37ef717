//! `/api/v1/domains`: every customer's own domain, with retry and remove.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::customers::Reason;
use crate::actions::domains as actions;
use crate::auth::{ApiRole, ApiUser, OPERATOR};
use crate::error::Result;
use crate::params::{ApiJson, Id};
use crate::state::AppState;

/// How many domains the list holds, newest first.
pub const LIST_LIMIT: i64 = 1000;

pub async fn list(State(state): State<AppState>, ApiUser(_): ApiUser) -> Result<Json<Value>> {
    let items = saas_core::domains::list_all(&state.db, LIST_LIMIT).await?;
    Ok(Json(json!({ "items": items })))
}

pub async fn retry(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OPERATOR>,
    Id(id): Id,
    ApiJson(body): ApiJson<Reason>,
) -> Result<Json<Value>> {
    let domain = actions::retry(&state, &user, id, &body.reason).await?;
    Ok(Json(json!({ "domain": domain })))
}

pub async fn remove(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OPERATOR>,
    Id(id): Id,
    ApiJson(body): ApiJson<Reason>,
) -> Result<Json<Value>> {
    let domain = actions::remove(&state, &user, id, &body.reason).await?;
    Ok(Json(json!({ "domain": domain })))
}
