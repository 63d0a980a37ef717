//! Customers' accounts: sign-up, look-up, email verification and password
//! reset through one-time tokens stored as SHA-256.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::auth::{random_token, sha256_hex};

/// One row of `customers`, without its password hash.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Customer {
    pub id: Uuid,
    pub email: String,
    pub company_name: String,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, email::text AS email, company_name, email_verified_at, disabled, created_at";

/// What a one-time token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    VerifyEmail,
    ResetPassword,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::VerifyEmail => "verify_email",
            TokenPurpose::ResetPassword => "reset_password",
        }
    }
}

/// The outcome of a sign-up; the caller must answer both the same way.
#[derive(Debug, Clone)]
pub enum SignUp {
    Created(Customer),
    /// The address already has an account (returned, not changed).
    EmailTaken(Customer),
}

/// A syntactically plausible email address, trimmed; `None` when it is not.
pub fn normalize_email(raw: &str) -> Option<String> {
    let email = raw.trim();
    let (local, domain) = email.rsplit_once('@')?;
    let plausible = (3..=254).contains(&email.len())
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@');
    plausible.then(|| email.to_owned())
}

/// Inserts a customer, or returns the existing one holding the address.
#[tracing::instrument(skip_all)]
pub async fn sign_up(
    conn: &mut PgConnection,
    email: &str,
    company_name: &str,
    password_hash: &str,
) -> Result<SignUp, sqlx::Error> {
    let inserted: Option<Customer> = sqlx::query_as(&format!(
        "INSERT INTO customers (id, email, company_name, password_hash)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (email) DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(email)
    .bind(company_name)
    .bind(password_hash)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(customer) = inserted {
        return Ok(SignUp::Created(customer));
    }
    let existing: Customer =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM customers WHERE email = $1"))
            .bind(email)
            .fetch_one(&mut *conn)
            .await?;
    Ok(SignUp::EmailTaken(existing))
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<Customer>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM customers WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The customer and password hash for a login.
pub async fn credentials(
    pool: &PgPool,
    email: &str,
) -> Result<Option<(Customer, String)>, sqlx::Error> {
    let row: Option<(Uuid, String)> =
        sqlx::query_as("SELECT id, password_hash FROM customers WHERE email = $1")
            .bind(email.trim())
            .fetch_optional(pool)
            .await?;
    let Some((id, hash)) = row else {
        return Ok(None);
    };
    Ok(get(pool, id).await?.map(|customer| (customer, hash)))
}

/// Issues a one-time token; returns the secret, which is never stored.
pub async fn issue_token(
    conn: &mut PgConnection,
    customer_id: Uuid,
    purpose: TokenPurpose,
    ttl: Duration,
) -> Result<String, sqlx::Error> {
    let secret = random_token(32);
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
    sqlx::query(
        "INSERT INTO customer_tokens (id, customer_id, purpose, token_hash, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(Uuid::new_v4())
    .bind(customer_id)
    .bind(purpose.as_str())
    .bind(sha256_hex(&secret))
    .bind(Utc::now() + ttl)
    .execute(conn)
    .await?;
    Ok(secret)
}

/// Uses a token once: the customer it was issued to when it is unused and not
/// expired; `None` otherwise (unknown, used, expired: indistinguishable).
pub async fn consume_token(
    conn: &mut PgConnection,
    purpose: TokenPurpose,
    secret: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    sqlx::query_scalar(
        "UPDATE customer_tokens SET used_at = now()
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
         RETURNING customer_id",
    )
    .bind(sha256_hex(secret))
    .bind(purpose.as_str())
    .fetch_optional(conn)
    .await
}

/// Whether a token would be accepted now, without using it (to show a form).
pub async fn token_is_live(
    pool: &PgPool,
    purpose: TokenPurpose,
    secret: &str,
) -> Result<bool, sqlx::Error> {
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(false);
    }
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM customer_tokens
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now())",
    )
    .bind(sha256_hex(secret))
    .bind(purpose.as_str())
    .fetch_one(pool)
    .await
}

/// Marks the address verified (idempotent).
pub async fn mark_verified(conn: &mut PgConnection, customer_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE customers SET email_verified_at = coalesce(email_verified_at, now()) WHERE id = $1",
    )
    .bind(customer_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets a new password hash and voids the customer's other unused reset tokens.
pub async fn set_password(
    conn: &mut PgConnection,
    customer_id: Uuid,
    password_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE customers SET password_hash = $2 WHERE id = $1")
        .bind(customer_id)
        .bind(password_hash)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE customer_tokens SET used_at = now()
         WHERE customer_id = $1 AND purpose = 'reset_password' AND used_at IS NULL",
    )
    .bind(customer_id)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::normalize_email;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" a@b.example ").as_deref(),
            Some("a@b.example")
        );
        for bad in [
            "",
            "a",
            "a@b",
            "@b.example",
            "a b@c.example",
            "a@.example",
            "a@b.example.",
        ] {
            assert!(normalize_email(bad).is_none(), "{bad}");
        }
    }
}
