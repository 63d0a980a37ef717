//! The operations listing.

use chrono::{DateTime, Utc};
use saas_core::ops::Operation;
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Page, encode_cursor, limit_clause};

/// An operation with its tenant's subdomain.
#[derive(Debug, Clone, Serialize)]
pub struct OperationItem {
    #[serde(flatten)]
    pub operation: Operation,
    pub subdomain: String,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for OperationItem {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            operation: Operation::from_row(row)?,
            subdomain: row.try_get("subdomain")?,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub state: Option<String>,
    pub kind: Option<String>,
    pub tenant: Option<Uuid>,
    pub cursor: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

pub fn parse_cursor(raw: &str) -> Option<(DateTime<Utc>, Uuid)> {
    super::customers::parse_cursor(raw)
}

/// The 50 latest failed operations, as the queues page and API list them.
pub async fn latest_failed(pool: &PgPool) -> Result<Vec<OperationItem>, sqlx::Error> {
    let filter = Filter {
        state: Some("failed".to_owned()),
        limit: 50,
        ..Default::default()
    };
    Ok(list(pool, &filter).await?.items)
}

pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page<OperationItem>, sqlx::Error> {
    let columns = saas_core::ops::model::COLUMNS
        .split(", ")
        .map(|c| format!("o.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new(format!(
        "SELECT {columns}, t.subdomain FROM operations o JOIN tenants t ON t.id = o.tenant_id WHERE true"
    ));
    if let Some(state) = &filter.state {
        query.push(" AND o.state = ").push_bind(state.clone());
    }
    if let Some(kind) = &filter.kind {
        query.push(" AND o.kind = ").push_bind(kind.clone());
    }
    if let Some(tenant) = filter.tenant {
        query.push(" AND o.tenant_id = ").push_bind(tenant);
    }
    if let Some((at, id)) = filter.cursor {
        query
            .push(" AND (o.created_at, o.id) < (")
            .push_bind(at)
            .push(", ")
            .push_bind(id)
            .push(")");
    }
    query
        .push(" ORDER BY o.created_at DESC, o.id DESC")
        .push(limit_clause(filter.limit));
    let rows: Vec<OperationItem> = query.build_query_as().fetch_all(pool).await?;
    Ok(Page::from_rows(rows, filter.limit, |item| {
        encode_cursor(
            &item
                .operation
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            &item.operation.id.to_string(),
        )
    }))
}
