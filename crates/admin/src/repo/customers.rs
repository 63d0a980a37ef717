//! Customers as operators see them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Page, decode_cursor, encode_cursor, like_prefix, limit_clause};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CustomerRow {
    pub id: Uuid,
    pub email: String,
    pub company_name: String,
    pub disabled: bool,
    pub email_verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub tenant_count: i64,
}

const COLUMNS: &str = "c.id, c.email::text AS email, c.company_name, c.disabled, c.email_verified_at, c.created_at, \
    (SELECT count(*) FROM tenants t WHERE t.customer_id = c.id AND t.state <> 'deleted') AS tenant_count";

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Prefix of the email.
    pub q: Option<String>,
    pub disabled: Option<bool>,
    pub cursor: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

pub fn parse_cursor(raw: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (at, id) = decode_cursor(raw)?;
    Some((
        DateTime::parse_from_rfc3339(&at).ok()?.with_timezone(&Utc),
        id.parse().ok()?,
    ))
}

pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page<CustomerRow>, sqlx::Error> {
    let mut query: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS} FROM customers c WHERE true"));
    if let Some(q) = &filter.q {
        query
            .push(" AND lower(c.email::text) LIKE ")
            .push_bind(like_prefix(&q.to_lowercase()));
    }
    if let Some(disabled) = filter.disabled {
        query.push(" AND c.disabled = ").push_bind(disabled);
    }
    if let Some((at, id)) = filter.cursor {
        query
            .push(" AND (c.created_at, c.id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    query
        .push(" ORDER BY c.created_at DESC, c.id DESC")
        .push(limit_clause(filter.limit));
    let rows: Vec<CustomerRow> = query.build_query_as().fetch_all(pool).await?;
    Ok(Page::from_rows(rows, filter.limit, |c| {
        encode_cursor(
            &c.created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            &c.id.to_string(),
        )
    }))
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<CustomerRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM customers c WHERE c.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A customer with their tenants (the first 200), as the customer page and
/// the API show them; `None` when `id` is unknown.
pub async fn with_tenants(
    pool: &PgPool,
    id: Uuid,
) -> Result<Option<(CustomerRow, Vec<super::tenants::TenantItem>)>, sqlx::Error> {
    let Some(customer) = get(pool, id).await? else {
        return Ok(None);
    };
    let tenants = super::tenants::list(
        pool,
        &super::tenants::Filter {
            customer: Some(id),
            limit: 200,
            ..Default::default()
        },
    )
    .await?;
    Ok(Some((customer, tenants.items)))
}

pub async fn by_email(pool: &PgPool, email: &str) -> Result<Option<CustomerRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM customers c WHERE c.email = $1"
    ))
    .bind(email)
    .fetch_optional(pool)
    .await
}

/// Creates a customer on an operator's behalf; `None` when the email is taken.
pub async fn create(
    conn: &mut PgConnection,
    email: &str,
    company_name: &str,
    password_hash: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    let inserted = sqlx::query_scalar::<_, Uuid>(
        "INSERT INTO customers (id, email, company_name, password_hash) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(email)
    .bind(company_name)
    .bind(password_hash)
    .fetch_one(conn)
    .await;
    match inserted {
        Ok(id) => Ok(Some(id)),
        Err(err) if super::is_unique_violation(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Disables or enables; `None` when unknown, else whether it changed.
pub async fn set_disabled(
    conn: &mut PgConnection,
    id: Uuid,
    disabled: bool,
) -> Result<Option<bool>, sqlx::Error> {
    let before: Option<bool> =
        sqlx::query_scalar("SELECT disabled FROM customers WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(before) = before else {
        return Ok(None);
    };
    sqlx::query("UPDATE customers SET disabled = $2 WHERE id = $1")
        .bind(id)
        .bind(disabled)
        .execute(&mut *conn)
        .await?;
    Ok(Some(before != disabled))
}
