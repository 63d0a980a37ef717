//! `/api/v1/domains`: every customer's own domain, with retry and remove.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::customers::Reason;
use crate::actions::domains as actions;
use crate::auth::{ApiRole, ApiUser, OPERATOR};
use crate::error::Result;
use crate::filters;
use crate::params::{ApiJson, Id, Params};
use crate::repo;
use crate::state::AppState;

pub async fn list(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    params: Params,
) -> Result<Json<Value>> {
    let filter = filters::domains(&params)?;
    Ok(Json(json!(repo::domains::list(&state.db, &filter).await?)))
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
