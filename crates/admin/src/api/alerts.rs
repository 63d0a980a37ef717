//! The Alertmanager webhook and the alerts it stored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use saas_core::audit;
use saas_core::auth::constant_time_eq;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use crate::auth::{ApiUser, bearer};
use crate::error::{Error, Result};
use crate::params::parse_json;
use crate::repo::alerts::{self, Webhook};
use crate::state::AppState;

pub async fn list(State(state): State<AppState>, ApiUser(_): ApiUser) -> Result<Json<Value>> {
    Ok(Json(
        json!({ "items": alerts::recent(&state.db, 200).await? }),
    ))
}

/// Stores firing and resolved alerts; refuses anything without the
/// configured bearer token (compared in constant time).
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>> {
    let Some(expected) = &state.settings.alert_webhook_token else {
        return Err(Error::Unauthorized);
    };
    let sent = bearer(&headers).unwrap_or("");
    if !constant_time_eq(sent, expected.expose_secret()) {
        return Err(Error::Unauthorized);
    }
    let hook: Webhook = parse_json(&body)?;
    if hook.alerts.len() > 1000 {
        return Err(Error::invalid("alerts", "at most 1000 alerts per call"));
    }
    let mut tx = state.db.begin().await?;
    let stored = alerts::upsert(&mut tx, &hook).await?;
    let firing = hook
        .alerts
        .iter()
        .filter(|a| a.status != "resolved")
        .count();
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: "system:alertmanager",
            action: "alert.receive",
            target: None,
            address: None,
            details: json!({ "alerts": stored, "firing": firing }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "stored": stored })))
}
