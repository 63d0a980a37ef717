//! API tokens: shown once, stored as SHA-256, revocable.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{random_token, sha256_hex};

/// Whose token it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    Operator,
    Customer,
}

impl Owner {
    pub fn as_str(self) -> &'static str {
        match self {
            Owner::Operator => "operator",
            Owner::Customer => "customer",
        }
    }

    /// Tokens start with this, so a leaked one is recognisable (and scannable).
    pub fn prefix(self) -> &'static str {
        match self {
            Owner::Operator => "osa_",
            Owner::Customer => "osc_",
        }
    }
}

/// A token as listed (never with its secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct ApiToken {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Creates a token; returns it with its secret, which is never stored.
pub async fn create(
    conn: &mut PgConnection,
    owner: Owner,
    owner_id: Uuid,
    name: &str,
) -> Result<(ApiToken, String), sqlx::Error> {
    let secret = format!("{}{}", owner.prefix(), random_token(24));
    let token = sqlx::query_as::<_, ApiToken>(
        "INSERT INTO api_tokens (id, owner_kind, owner_id, name, token_hash)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING id, name, created_at, last_used_at, revoked_at",
    )
    .bind(Uuid::new_v4())
    .bind(owner.as_str())
    .bind(owner_id)
    .bind(name)
    .bind(sha256_hex(&secret))
    .fetch_one(conn)
    .await?;
    Ok((token, secret))
}

/// How stale `last_used_at` may get: a token used on every request writes
/// its row at most once per this interval, not once per request.
pub const LAST_USE_RESOLUTION_SECS: i32 = 60;

/// The owner of a live token, recording its use (at most once per
/// [`LAST_USE_RESOLUTION_SECS`], so a busy API client costs a read, not a
/// write, per request).
pub async fn authenticate(
    pool: &PgPool,
    owner: Owner,
    secret: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    if !secret.starts_with(owner.prefix()) || secret.len() > 200 {
        return Ok(None);
    }
    sqlx::query_scalar(
        "WITH token AS (
             SELECT id, owner_id, last_used_at FROM api_tokens
             WHERE token_hash = $1 AND owner_kind = $2 AND revoked_at IS NULL
         ), touched AS (
             UPDATE api_tokens t SET last_used_at = now()
             FROM token
             WHERE t.id = token.id
               AND (token.last_used_at IS NULL
                    OR token.last_used_at < now() - make_interval(secs => $3))
         )
         SELECT owner_id FROM token",
    )
    .bind(sha256_hex(secret))
    .bind(owner.as_str())
    .bind(f64::from(LAST_USE_RESOLUTION_SECS))
    .fetch_optional(pool)
    .await
}

pub async fn list(
    pool: &PgPool,
    owner: Owner,
    owner_id: Uuid,
) -> Result<Vec<ApiToken>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, created_at, last_used_at, revoked_at FROM api_tokens
         WHERE owner_kind = $1 AND owner_id = $2 ORDER BY created_at DESC",
    )
    .bind(owner.as_str())
    .bind(owner_id)
    .fetch_all(pool)
    .await
}

/// Revokes one of the owner's tokens; false when it is not theirs or unknown.
pub async fn revoke(
    conn: &mut PgConnection,
    owner: Owner,
    owner_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now())
         WHERE id = $1 AND owner_kind = $2 AND owner_id = $3",
    )
    .bind(id)
    .bind(owner.as_str())
    .bind(owner_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
