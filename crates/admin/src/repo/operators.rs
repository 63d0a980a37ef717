//! Operators: accounts of the people who run the platform.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::auth::Role;

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OperatorRow {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub disabled: bool,
    pub totp_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, email::text AS email, display_name, role, disabled, \
    totp_enabled_at IS NOT NULL AS totp_enabled, created_at, last_login_at";

/// What login needs besides the row.
pub struct Credentials {
    pub operator: OperatorRow,
    pub password_hash: String,
    pub totp_secret: Option<String>,
}

/// An address that can receive mail: `local@domain`, no spaces, at most 254.
pub fn valid_email(value: &str) -> bool {
    let Some((local, domain)) = value.split_once('@') else {
        return false;
    };
    (3..=254).contains(&value.len())
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && value.chars().all(|c| !c.is_whitespace() && !c.is_control())
}

pub async fn count(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM operators")
        .fetch_one(pool)
        .await
}

/// Inserts an operator; `None` when the email is taken.
pub async fn create(
    conn: &mut PgConnection,
    email: &str,
    display_name: &str,
    role: Role,
    password_hash: &str,
) -> Result<Option<OperatorRow>, sqlx::Error> {
    let inserted = sqlx::query_as::<_, OperatorRow>(&format!(
        "INSERT INTO operators (id, email, display_name, password_hash, role)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(email)
    .bind(display_name)
    .bind(password_hash)
    .bind(role.as_str())
    .fetch_one(conn)
    .await;
    match inserted {
        Ok(row) => Ok(Some(row)),
        Err(err) if super::is_unique_violation(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

pub async fn credentials(pool: &PgPool, email: &str) -> Result<Option<Credentials>, sqlx::Error> {
    let row: Option<(String, Option<String>, bool)> = sqlx::query_as(
        "SELECT password_hash, totp_secret, totp_enabled_at IS NOT NULL FROM operators WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(pool)
    .await?;
    let Some((password_hash, totp_secret, enabled)) = row else {
        return Ok(None);
    };
    let Some(operator) = by_email(pool, email).await? else {
        return Ok(None);
    };
    Ok(Some(Credentials {
        operator,
        password_hash,
        totp_secret: totp_secret.filter(|_| enabled),
    }))
}

pub async fn by_email(pool: &PgPool, email: &str) -> Result<Option<OperatorRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM operators WHERE email = $1"))
        .bind(email)
        .fetch_optional(pool)
        .await
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<OperatorRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM operators WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn list(pool: &PgPool) -> Result<Vec<OperatorRow>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM operators ORDER BY email"))
        .fetch_all(pool)
        .await
}

/// The operator owning a live API token; records its use at most once a
/// minute, so a busy client does not write on every request.
pub async fn by_api_token(pool: &PgPool, secret: &str) -> Result<Option<OperatorRow>, sqlx::Error> {
    use saas_core::auth::tokens::Owner;
    if !secret.starts_with(Owner::Operator.prefix()) || secret.len() > 200 {
        return Ok(None);
    }
    sqlx::query_as(&format!(
        "WITH token AS (
             SELECT id, owner_id, last_used_at FROM api_tokens
             WHERE token_hash = $1 AND owner_kind = 'operator' AND revoked_at IS NULL),
         used AS (
             UPDATE api_tokens SET last_used_at = now()
             WHERE id IN (SELECT id FROM token
                          WHERE last_used_at IS NULL OR last_used_at < now() - interval '60 seconds'))
         SELECT {COLUMNS} FROM operators WHERE id = (SELECT owner_id FROM token)"
    ))
    .bind(saas_core::auth::sha256_hex(secret))
    .fetch_optional(pool)
    .await
}

pub async fn record_login(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE operators SET last_login_at = now() WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Changes role and/or disabled; locks the owners first so two requests
/// cannot together remove the last active owner.
pub async fn update(
    conn: &mut PgConnection,
    id: Uuid,
    role: Option<Role>,
    disabled: Option<bool>,
) -> Result<Option<OperatorRow>, UpdateError> {
    let owners: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM operators WHERE role = 'owner' AND NOT disabled ORDER BY id FOR UPDATE",
    )
    .fetch_all(&mut *conn)
    .await?;
    let updated = sqlx::query_as::<_, OperatorRow>(&format!(
        "UPDATE operators SET role = coalesce($2, role), disabled = coalesce($3, disabled)
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(role.map(Role::as_str))
    .bind(disabled)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = &updated {
        let still_owner = row.role == Role::Owner && !row.disabled;
        if owners.contains(&id) && !still_owner && owners.len() == 1 {
            return Err(UpdateError::LastOwner);
        }
    }
    Ok(updated)
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("the last active owner cannot be demoted or disabled")]
    LastOwner,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub async fn set_password(
    conn: &mut PgConnection,
    id: Uuid,
    hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE operators SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Stores a TOTP secret not yet confirmed (second factor still off).
pub async fn set_pending_totp(
    conn: &mut PgConnection,
    id: Uuid,
    secret: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE operators SET totp_secret = $2, totp_enabled_at = NULL WHERE id = $1")
        .bind(id)
        .bind(secret)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn pending_totp(pool: &PgPool, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT totp_secret FROM operators WHERE id = $1 AND totp_enabled_at IS NULL",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .map(Option::flatten)
}

/// Turns the second factor on and replaces the recovery codes.
pub async fn enable_totp(
    conn: &mut PgConnection,
    id: Uuid,
    code_hashes: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE operators SET totp_enabled_at = now() WHERE id = $1 AND totp_secret IS NOT NULL",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    delete_recovery_codes(conn, id).await?;
    sqlx::query(
        "INSERT INTO operator_recovery_codes (operator_id, code_hash) SELECT $1, unnest($2::text[])",
    )
    .bind(id)
    .bind(code_hashes)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn delete_recovery_codes(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM operator_recovery_codes WHERE operator_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Records that a TOTP code of time step `step` was accepted; false when
/// this step or a later one already was (the code is being replayed).
pub async fn claim_totp_step<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    id: Uuid,
    step: i64,
) -> Result<bool, sqlx::Error> {
    let claimed = sqlx::query(
        "UPDATE operators SET totp_last_step = $2
         WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
    )
    .bind(id)
    .bind(step)
    .execute(executor)
    .await?;
    Ok(claimed.rows_affected() == 1)
}

pub async fn disable_totp(conn: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE operators SET totp_secret = NULL, totp_enabled_at = NULL WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    delete_recovery_codes(conn, id).await?;
    Ok(())
}

/// Uses a recovery code once; false when unknown or already used.
pub async fn use_recovery_code(
    pool: &PgPool,
    id: Uuid,
    code_hash: &str,
) -> Result<bool, sqlx::Error> {
    let used = sqlx::query(
        "UPDATE operator_recovery_codes SET used_at = now()
         WHERE operator_id = $1 AND code_hash = $2 AND used_at IS NULL",
    )
    .bind(id)
    .bind(code_hash)
    .execute(pool)
    .await?;
    Ok(used.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::valid_email;

    #[test]
    fn emails() {
        assert!(valid_email("a@b.c"));
        assert!(valid_email("ops@example.com"));
        assert!(!valid_email("no-at"));
        assert!(!valid_email("a@"));
        assert!(!valid_email("@b"));
        assert!(!valid_email("a b@c.d"));
        assert!(!valid_email("a@b@c"));
        assert!(!valid_email(&format!("{}@b.c", "a".repeat(260))));
    }
}
