//! `/api/v1/operations`, queues, workers, audit log and the dashboard counts.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::customers::Reason;
use crate::actions::operations as actions;
use crate::auth::{ApiRole, ApiUser, OPERATOR};
use crate::error::{Error, Result};
use crate::filters;
use crate::params::{ApiJson, Id, Params};
use crate::repo;
use crate::state::AppState;
use saas_core::error_chain::Chain;

/// Live workers, or `None` when Redis does not answer.
pub async fn live_workers(state: &AppState) -> Option<Vec<saas_core::ops::workers::WorkerInfo>> {
    let mut conn = state.redis.conn().await.ok()?;
    saas_core::ops::workers::live(&mut conn, state.redis.prefix())
        .await
        .map_err(|err| tracing::warn!(error = %Chain(&err), "listing live workers failed"))
        .ok()
}

pub async fn dashboard(State(state): State<AppState>, ApiUser(_): ApiUser) -> Result<Json<Value>> {
    let counts = repo::dashboard::counts(&state.db).await?;
    let alerts = repo::alerts::firing(&state.db).await?;
    let workers = live_workers(&state).await;
    Ok(Json(json!({
        "tenants_by_state": counts.tenants_by_state.into_iter().map(|(k, v)| (k, json!(v))).collect::<serde_json::Map<_, _>>(),
        "operations_24h": counts.operations_24h.into_iter().map(|(k, v)| (k, json!(v))).collect::<serde_json::Map<_, _>>(),
        "queue_depth": counts.queue_depth,
        "failed_operations": counts.failed_operations,
        "live_workers": workers.as_ref().map(Vec::len),
        "firing_alerts": alerts,
    })))
}

pub async fn list(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    params: Params,
) -> Result<Response> {
    let filter = filters::operations(&params)?;
    Ok(Json(repo::operations::list(&state.db, &filter).await?).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    Id(id): Id,
) -> Result<Json<Value>> {
    let operation = saas_core::ops::store::get(&state.db, id)
        .await?
        .ok_or(Error::NotFound("operation"))?;
    Ok(Json(json!(operation)))
}

pub async fn retry(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OPERATOR>,
    Id(id): Id,
    ApiJson(body): ApiJson<Reason>,
) -> Result<Json<Value>> {
    Ok(Json(json!(
        actions::retry(&state, &user, id, &body.reason).await?
    )))
}

pub async fn cancel(
    State(state): State<AppState>,
    ApiRole(user): ApiRole<OPERATOR>,
    Id(id): Id,
    ApiJson(body): ApiJson<Reason>,
) -> Result<Json<Value>> {
    Ok(Json(json!(
        actions::cancel(&state, &user, id, &body.reason).await?
    )))
}

pub async fn queues(State(state): State<AppState>, ApiUser(_): ApiUser) -> Result<Json<Value>> {
    let depth = saas_core::ops::store::queue_depth(&state.db).await?;
    let failed = repo::operations::latest_failed(&state.db).await?;
    let workers = live_workers(&state).await;
    Ok(Json(json!({
        "queues": [{ "name": format!("{}operations", state.redis.prefix()), "queued": depth }],
        "failed": failed,
        "workers": workers,
        "redis_reachable": workers.is_some(),
    })))
}

pub async fn workers(State(state): State<AppState>, ApiUser(_): ApiUser) -> Result<Json<Value>> {
    let workers = live_workers(&state)
        .await
        .ok_or(Error::Unavailable("Redis"))?;
    let now = chrono::Utc::now();
    let items: Vec<Value> = workers
        .into_iter()
        .map(|w| {
            let age = (now - w.heartbeat_at).num_milliseconds() as f64 / 1000.0;
            let mut value = json!(w);
            value["heartbeat_age_secs"] = json!(age);
            value
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub async fn audit(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    params: Params,
) -> Result<Response> {
    let filter = filters::audit(&params, filters::MAX_LIMIT)?;
    Ok(Json(repo::audit::list(&state.db, &filter).await?).into_response())
}

/// The audit log as CSV, at most this many rows.
pub const CSV_ROWS: i64 = 50_000;

pub async fn audit_csv(
    State(state): State<AppState>,
    ApiUser(_): ApiUser,
    params: Params,
) -> Result<Response> {
    csv_response(&state, &params).await
}

pub async fn csv_response(state: &AppState, params: &Params) -> Result<Response> {
    let mut filter = filters::audit(params, CSV_ROWS)?;
    filter.limit = CSV_ROWS;
    let page = repo::audit::list(&state.db, &filter).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"audit.csv\"",
            ),
        ],
        repo::audit::to_csv(&page.items),
    )
        .into_response())
}
