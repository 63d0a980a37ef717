//! SQL of admin's operator views: listings with filters and keyset
//! pagination, and the CRUD of customers, plans, servers and operators.
//! Every change takes a connection so the caller writes its audit entry in
//! the same transaction.

pub mod alerts;
pub mod audit;
pub mod customers;
pub mod dashboard;
pub mod domains;
pub mod operations;
pub mod operators;
pub mod plans;
pub mod servers;
pub mod tenants;

use serde::Serialize;

/// An entry of a filter's drop-down: id and label, without counts.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Choice {
    pub id: uuid::Uuid,
    pub label: String,
}

/// Plans (by code) and servers (by name) for filter drop-downs.
pub async fn choices(pool: &sqlx::PgPool) -> Result<(Vec<Choice>, Vec<Choice>), sqlx::Error> {
    let plans = sqlx::query_as("SELECT id, code AS label FROM plans ORDER BY code")
        .fetch_all(pool)
        .await?;
    let servers = sqlx::query_as("SELECT id, name AS label FROM servers ORDER BY name")
        .fetch_all(pool)
        .await?;
    Ok((plans, servers))
}

/// One page of a keyset-paginated listing.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Trims the extra row fetched to learn whether more follow.
    pub fn from_rows(mut rows: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(cursor_of)
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// ` LIMIT n+1` as a literal (the extra row tells whether more follow). A
/// literal, not a parameter: with a parameter PostgreSQL's generic plan
/// assumes a large limit, so it plans every execution anew (about 1 ms).
pub fn limit_clause(limit: i64) -> String {
    format!(" LIMIT {}", limit.clamp(0, 100_000) + 1)
}

/// `value` with LIKE's wildcards escaped, for a prefix match.
pub fn like_prefix(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len() + 1);
    for c in value.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

/// Cursors are opaque to clients: hex of `key|id`.
pub fn encode_cursor(key: &str, id: &str) -> String {
    hex::encode(format!("{key}|{id}"))
}

/// The `(key, id)` of a cursor; `None` when it is not one of ours.
pub fn decode_cursor(cursor: &str) -> Option<(String, String)> {
    let bytes = hex::decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (key, id) = text.rsplit_once('|')?;
    Some((key.to_owned(), id.to_owned()))
}

pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_unique_violation())
}

pub fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_foreign_key_violation())
}

/// The outcome of an insert or update `RETURNING id` of a catalog row (plan,
/// server): a unique violation becomes `taken`.
fn saved<E: From<sqlx::Error>>(
    result: Result<Option<uuid::Uuid>, sqlx::Error>,
    taken: E,
) -> Result<Option<uuid::Uuid>, E> {
    match result {
        Ok(id) => Ok(id),
        Err(err) if is_unique_violation(&err) => Err(taken),
        Err(err) => Err(err.into()),
    }
}

/// Deletes row `id` of the catalog `table` unless tenants (deleted ones
/// included: they keep their history) refer to it through `tenant_column`;
/// `in_use(n)` when `n` do. False when `id` is unknown.
async fn delete_unused<E: From<sqlx::Error>>(
    conn: &mut sqlx::PgConnection,
    table: &'static str,
    tenant_column: &'static str,
    id: uuid::Uuid,
    in_use: impl Fn(i64) -> E,
) -> Result<bool, E> {
    let used: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM tenants WHERE {tenant_column} = $1"
    ))
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    if used > 0 {
        return Err(in_use(used));
    }
    let deleted = sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
        .bind(id)
        .execute(&mut *conn)
        .await;
    match deleted {
        Ok(done) => Ok(done.rows_affected() == 1),
        Err(err) if is_foreign_key_violation(&err) => Err(in_use(1)),
        Err(err) => Err(err.into()),
    }
}

pub fn is_check_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.is_check_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = encode_cursor("2024-01-01T00:00:00Z", "abc");
        assert_eq!(
            decode_cursor(&cursor),
            Some(("2024-01-01T00:00:00Z".to_owned(), "abc".to_owned()))
        );
        assert_eq!(decode_cursor("zz"), None);
        assert_eq!(like_prefix("a_b%"), "a\\_b\\%%");
    }
}
