//! Emails the platform sends. Without an SMTP server they stay here, and
//! operators read them in admin; a failed SMTP delivery is kept with its error.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// One message.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OutboxEmail {
    pub id: Uuid,
    pub to_address: String,
    pub subject: String,
    pub body_text: String,
    pub purpose: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

const COLUMNS: &str = "id, to_address, subject, body_text, purpose, created_at, sent_at, error";

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewEmail<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body_text: &'a str,
    pub purpose: &'a str,
}

pub async fn store(
    conn: &mut PgConnection,
    email: &NewEmail<'_>,
    sent: bool,
    error: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO email_outbox (id, to_address, subject, body_text, purpose, sent_at, error)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END, $7) RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(email.to)
    .bind(email.subject)
    .bind(email.body_text)
    .bind(email.purpose)
    .bind(sent)
    .bind(error)
    .fetch_one(conn)
    .await
}

/// Newest first; `to` filters by recipient (case-insensitive).
pub async fn list(
    pool: &PgPool,
    to: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<OutboxEmail>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM email_outbox
         WHERE $1::text IS NULL OR lower(to_address) = lower($1)
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(to)
    .bind(limit.clamp(1, 1000))
    .bind(offset.max(0))
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<OutboxEmail>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM email_outbox WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}
