//! Customers' own domains, every tenant's, a page at a time (the Domains
//! page and `GET /api/v1/domains`).

use chrono::{DateTime, Utc};
use saas_core::domain::DomainState;
use saas_core::domains::DomainWithTenant;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Page, encode_cursor};

pub struct Filter {
    pub state: Option<DomainState>,
    pub cursor: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// One page, newest first; the cursor is that of the other lists
/// (`created_at|id`, see `customers::parse_cursor`).
pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page<DomainWithTenant>, sqlx::Error> {
    let rows = saas_core::domains::list_all(
        pool,
        filter.state,
        filter.cursor,
        filter.limit.saturating_add(1),
    )
    .await?;
    Ok(Page::from_rows(rows, filter.limit, |row| {
        encode_cursor(
            &row.domain
                .created_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            &row.domain.id.to_string(),
        )
    }))
}
