//! The tenants listing (search, filters, keyset pagination) and the pieces
//! of the tenant page.

use chrono::{DateTime, Utc};
use saas_core::ops::Operation;
use saas_core::tenants::Tenant;
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{Page, decode_cursor, encode_cursor, like_prefix, limit_clause};

/// One line of the tenants list.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TenantItem {
    pub id: Uuid,
    pub subdomain: String,
    pub state: String,
    pub customer_id: Uuid,
    pub customer_email: String,
    pub plan_id: Uuid,
    pub plan_code: String,
    pub server_id: Option<Uuid>,
    pub server_name: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Newest first.
    #[default]
    Created,
    /// By subdomain, a to z.
    Name,
}

impl std::str::FromStr for Sort {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "created" => Ok(Sort::Created),
            "name" => Ok(Sort::Name),
            _ => Err(()),
        }
    }
}

impl Sort {
    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Created => "created",
            Sort::Name => "name",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Prefix of the subdomain, or of the customer's email.
    pub q: Option<String>,
    pub state: Option<String>,
    pub plan: Option<Uuid>,
    pub server: Option<Uuid>,
    pub customer: Option<Uuid>,
    pub sort: Sort,
    pub cursor: Option<Cursor>,
    pub limit: i64,
}

/// Where the previous page ended.
#[derive(Debug, Clone)]
pub enum Cursor {
    Created(DateTime<Utc>, Uuid),
    Name(String, Uuid),
}

impl Cursor {
    /// Decodes a cursor made for `sort`; `None` when it is not one.
    pub fn parse(raw: &str, sort: Sort) -> Option<Self> {
        let (key, id) = decode_cursor(raw)?;
        let id: Uuid = id.parse().ok()?;
        match sort {
            Sort::Created => Some(Cursor::Created(
                DateTime::parse_from_rfc3339(&key).ok()?.with_timezone(&Utc),
                id,
            )),
            Sort::Name => Some(Cursor::Name(key, id)),
        }
    }

    fn of(item: &TenantItem, sort: Sort) -> String {
        match sort {
            Sort::Created => encode_cursor(
                &item
                    .created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                &item.id.to_string(),
            ),
            Sort::Name => encode_cursor(&item.subdomain, &item.id.to_string()),
        }
    }
}

#[tracing::instrument(skip_all)]
pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page<TenantItem>, sqlx::Error> {
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT t.id, t.subdomain, t.state, t.customer_id, c.email::text AS customer_email,
                t.plan_id, p.code AS plan_code, t.server_id, s.name AS server_name, t.created_at
         FROM tenants t
         JOIN customers c ON c.id = t.customer_id
         JOIN plans p ON p.id = t.plan_id
         LEFT JOIN servers s ON s.id = t.server_id
         WHERE true",
    );
    if let Some(state) = &filter.state {
        query.push(" AND t.state = ").push_bind(state.clone());
    }
    if let Some(plan) = filter.plan {
        query.push(" AND t.plan_id = ").push_bind(plan);
    }
    if let Some(server) = filter.server {
        query.push(" AND t.server_id = ").push_bind(server);
    }
    if let Some(customer) = filter.customer {
        query.push(" AND t.customer_id = ").push_bind(customer);
    }
    if let Some(q) = &filter.q {
        let pattern = like_prefix(&q.to_lowercase());
        match matching_ids(pool, &pattern).await? {
            // A selective search: look the few matches up by id.
            Some(ids) => {
                query.push(" AND t.id = ANY(").push_bind(ids).push(")");
            }
            // A broad one: walk the ordered index, most rows match.
            None => {
                query
                    .push(" AND (t.subdomain LIKE ")
                    .push_bind(pattern.clone())
                    .push(" OR t.customer_id IN (SELECT id FROM customers WHERE lower(email::text) LIKE ")
                    .push_bind(pattern)
                    .push("))");
            }
        }
    }
    match &filter.cursor {
        Some(Cursor::Created(at, id)) => {
            query
                .push(" AND (t.created_at, t.id) < (")
                .push_bind(*at)
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        Some(Cursor::Name(name, id)) => {
            query
                .push(" AND (t.subdomain, t.id) > (")
                .push_bind(name.clone())
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        None => {}
    }
    query.push(match filter.sort {
        Sort::Created => " ORDER BY t.created_at DESC, t.id DESC",
        Sort::Name => " ORDER BY t.subdomain, t.id",
    });
    query.push(limit_clause(filter.limit));
    let rows: Vec<TenantItem> = query.build_query_as().fetch_all(pool).await?;
    let sort = filter.sort;
    Ok(Page::from_rows(rows, filter.limit, |item| {
        Cursor::of(item, sort)
    }))
}

/// Searches matching more tenants than this walk the ordered index instead.
const SELECTIVE: usize = 5000;

/// The tenants whose subdomain or customer email starts with `pattern`, when
/// at most [`SELECTIVE`] do; `None` for a broader search.
async fn matching_ids(pool: &PgPool, pattern: &str) -> Result<Option<Vec<Uuid>>, sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(&format!(
        "SELECT id FROM tenants WHERE subdomain LIKE $1
         UNION ALL
         SELECT t.id FROM tenants t JOIN customers c ON c.id = t.customer_id
         WHERE lower(c.email::text) LIKE $1
         LIMIT {}",
        SELECTIVE + 1
    ))
    .bind(pattern)
    .fetch_all(pool)
    .await?;
    // UNION ALL stops at the limit; a tenant matching twice counts twice.
    Ok((ids.len() <= SELECTIVE).then_some(ids))
}

/// Everything the tenant page shows about the tenant itself.
#[derive(Debug, Clone, Serialize)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub tenant: Tenant,
    pub customer_email: String,
    pub company_name: String,
    pub plan: super::plans::PlanRow,
    pub server_name: Option<String>,
    pub url: String,
}

pub async fn detail(
    pool: &PgPool,
    id: Uuid,
    public: &saas_core::public_url::PublicUrls,
) -> Result<Option<TenantDetail>, sqlx::Error> {
    let Some(tenant) = saas_core::tenants::get(pool, id).await? else {
        return Ok(None);
    };
    let (customer_email, company_name): (String, String) =
        sqlx::query_as("SELECT email::text, company_name FROM customers WHERE id = $1")
            .bind(tenant.customer_id)
            .fetch_one(pool)
            .await?;
    let Some(plan) = super::plans::get(pool, tenant.plan_id).await? else {
        return Ok(None);
    };
    let server_name: Option<String> = match tenant.server_id {
        Some(server) => {
            sqlx::query_scalar("SELECT name FROM servers WHERE id = $1")
                .bind(server)
                .fetch_optional(pool)
                .await?
        }
        None => None,
    };
    let url = format!("{}/", public.tenant(&tenant.subdomain));
    Ok(Some(TenantDetail {
        tenant,
        customer_email,
        company_name,
        plan,
        server_name,
        url,
    }))
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Backup {
    pub id: Uuid,
    pub object_key: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Where good copies exist: `primary`, `replica`, `primary+replica`
    /// or `none` (see `saas_core::backups::Backup::copies`).
    pub copies: String,
    pub replica_at: Option<DateTime<Utc>>,
    pub primary_lost_at: Option<DateTime<Utc>>,
}

pub async fn backups(pool: &PgPool, tenant: Uuid) -> Result<Vec<Backup>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, object_key, size_bytes, sha256, kind, created_at, expires_at,
                CASE WHEN primary_lost_at IS NULL AND replica_at IS NOT NULL THEN 'primary+replica'
                     WHEN primary_lost_at IS NULL THEN 'primary'
                     WHEN replica_at IS NOT NULL THEN 'replica'
                     ELSE 'none' END AS copies,
                replica_at, primary_lost_at
         FROM backups WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT 100",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
}

pub async fn backup_belongs(
    pool: &PgPool,
    tenant: Uuid,
    backup: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM backups WHERE id = $1 AND tenant_id = $2)")
        .bind(backup)
        .bind(tenant)
        .fetch_one(pool)
        .await
}

pub async fn operations(
    pool: &PgPool,
    tenant: Uuid,
    limit: i64,
) -> Result<Vec<Operation>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {} FROM operations WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        saas_core::ops::model::COLUMNS
    ))
    .bind(tenant)
    .bind(limit)
    .fetch_all(pool)
    .await
}
