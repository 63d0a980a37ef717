//! Alerts received from Alertmanager, one row per fingerprint.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

/// Alertmanager's webhook payload (version 4), the parts kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub alerts: Vec<WebhookAlert>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: String,
    #[serde(default)]
    pub labels: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub annotations: serde_json::Map<String, serde_json::Value>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub fingerprint: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AlertRow {
    pub fingerprint: String,
    pub name: String,
    pub status: String,
    pub severity: Option<String>,
    pub summary: Option<String>,
    pub labels: serde_json::Value,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
}

fn label(map: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(|v| v.as_str())
        .map(|s| s.chars().take(500).collect())
}

/// Stores each alert's latest status; returns how many were stored.
pub async fn upsert(conn: &mut PgConnection, hook: &Webhook) -> Result<usize, sqlx::Error> {
    let mut stored = 0;
    for alert in &hook.alerts {
        let status = if alert.status == "resolved" {
            "resolved"
        } else {
            "firing"
        };
        let name = label(&alert.labels, "alertname").unwrap_or_else(|| "unnamed".to_owned());
        let fingerprint = if alert.fingerprint.is_empty() {
            saas_core::auth::sha256_hex(
                &serde_json::Value::Object(alert.labels.clone()).to_string(),
            )
        } else {
            alert.fingerprint.chars().take(200).collect()
        };
        let summary = label(&alert.annotations, "summary")
            .or_else(|| label(&alert.annotations, "description"));
        sqlx::query(
            "INSERT INTO alerts (fingerprint, name, status, severity, summary, labels, annotations, starts_at, ends_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (fingerprint) DO UPDATE SET name = $2, status = $3, severity = $4, summary = $5,
                 labels = $6, annotations = $7, starts_at = $8, ends_at = $9, received_at = now()",
        )
        .bind(&fingerprint)
        .bind(&name)
        .bind(status)
        .bind(label(&alert.labels, "severity"))
        .bind(summary)
        .bind(serde_json::Value::Object(alert.labels.clone()))
        .bind(serde_json::Value::Object(alert.annotations.clone()))
        .bind(alert.starts_at)
        .bind(alert.ends_at.filter(|_| status == "resolved"))
        .execute(&mut *conn)
        .await?;
        stored += 1;
    }
    Ok(stored)
}

const COLUMNS: &str =
    "fingerprint, name, status, severity, summary, labels, starts_at, ends_at, received_at";

pub async fn firing(pool: &PgPool) -> Result<Vec<AlertRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alerts WHERE status = 'firing' ORDER BY starts_at DESC NULLS LAST LIMIT 100"
    ))
    .fetch_all(pool)
    .await
}

/// Firing and recently resolved alerts, newest first.
pub async fn recent(pool: &PgPool, limit: i64) -> Result<Vec<AlertRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM alerts ORDER BY status = 'firing' DESC, received_at DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(pool)
    .await
}
