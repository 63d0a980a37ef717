//! `/api/v1/instances/{id}/domains`: the instance's own domains, as on its
//! page. Rows of the route table in `api.rs`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::actions;
use crate::auth::Api;
use crate::domains::{self, domain_json};
use crate::error::AppError;
use crate::routes::instances::parse_id;
use crate::state::AppState;

type ApiResult = Result<Response, AppError>;

pub async fn list(
    State(state): State<AppState>,
    Api(who): Api,
    Path(id): Path<String>,
) -> ApiResult {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, true).await?;
    let plan = saas_core::customer_tenants::plan(&state.db, &tenant.plan_id.to_string()).await?;
    let rows = domains::list(&state, &tenant).await?;
    Ok(Json(json!({
        "domains": rows.iter().map(|d| domain_json(&state, &tenant, d)).collect::<Vec<_>>(),
        "max_domains": plan.map(|p| p.max_domains),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct NewDomain {
    domain: String,
}

/// 202 with the domain: verification and the certificate follow by
/// themselves. `created` is false when the instance already had it.
pub async fn add(
    State(state): State<AppState>,
    Api(who): Api,
    Path(id): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, false).await?;
    let input: NewDomain = crate::extract::json_body(&bytes)?;
    let (domain, created) = domains::add(&state, &who, &tenant, &input.domain).await?;
    Ok(accepted(json!({
        "domain": domain_json(&state, &tenant, &domain),
        "created": created,
    })))
}

pub async fn make_primary(
    State(state): State<AppState>,
    Api(who): Api,
    Path((id, domain_id)): Path<(String, String)>,
) -> ApiResult {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, false).await?;
    let domain = domains::make_primary(&state, &who, &tenant, parse_id(&domain_id)?).await?;
    Ok(accepted(
        json!({ "domain": domain_json(&state, &tenant, &domain) }),
    ))
}

/// 202 with the removed domain: its route and certificate go shortly.
pub async fn remove(
    State(state): State<AppState>,
    Api(who): Api,
    Path((id, domain_id)): Path<(String, String)>,
) -> ApiResult {
    let tenant = actions::instance(&state, &who, parse_id(&id)?, false).await?;
    let domain = domains::remove(&state, &who, &tenant, parse_id(&domain_id)?).await?;
    Ok(accepted(
        json!({ "domain": domain_json(&state, &tenant, &domain) }),
    ))
}

fn accepted(value: serde_json::Value) -> Response {
    (StatusCode::ACCEPTED, Json(value)).into_response()
}
