//! `/api/v1/customers`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::actions::customers::{self as actions, NewCustomer};
use crate::auth::{ApiRole, ApiUser, OPERATOR};
use crate::error::{Error, Result};
use crate::filters;
use crate::params::{ApiJson, Id, Params};
use crate::repo;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub reason: String,
}

pub async fn list(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    params: Params,
) -> Result<Response> {
    let filter = filters::customers(&params)?;
    Ok(Json(repo::customers::list(&state.db, &filter).await?).into_response())
}

pub async fn create(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OPERATOR>,
    ApiJson(body): ApiJson<NewCustomer>,
) -> Result<Response> {
    let id = actions::create(&state, &user, body).await?;
    let customer = repo::customers::get(&state.db, id).await?;
    Ok((StatusCode::CREATED, Json(json!(customer))).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    Id(id): Id,
) -> Result<Json<Value>> {
    let (customer, tenants) = repo::customers::with_tenants(&state.db, id)
        .await?
        .ok_or(Error::NotFound("customer"))?;
    let mut body = json!(customer);
    body["tenants"] = json!(tenants);
    Ok(Json(body))
}

pub async fn disable(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OPERATOR>,
    Id(id): Id,
    ApiJson(body): ApiJson<Reason>,
) -> Result<Json<Value>> {
    actions::set_disabled(&state, &user, id, true, &body.reason).await?;
    Ok(Json(json!(repo::customers::get(&state.db, id).await?)))
}

pub async fn enable(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OPERATOR>,
    Id(id): Id,
    ApiJson(body): ApiJson<Reason>,
) -> Result<Json<Value>> {
    actions::set_disabled(&state, &user, id, false, &body.reason).await?;
    Ok(Json(json!(repo::customers::get(&state.db, id).await?)))
}
