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
use crate::repo::{Page, encode_cursor};
use crate::state::AppState;
use saas_core::domains::DomainWithTenant;

/// One page of the domains listing, newest first (the page and the API).
pub async fn page(state: &AppState, filter: &filters::Domains) -> Result<Page<DomainWithTenant>> {
    let rows = saas_core::domains::list_all(
        &state.db,
        filter.state,
        filter.cursor,
        filter.limit.saturating_add(1),
    )
    .await?;
    Ok(Page::from_rows(rows, filter.limit, |row| {
        encode_cursor(
            &row.domain
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            &row.domain.id.to_string(),
        )
    }))
}

pub async fn list(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    params: Params,
) -> Result<Json<Value>> {
    let filter = filters::domains(&params)?;
    Ok(Json(json!(page(&state, &filter).await?)))
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
