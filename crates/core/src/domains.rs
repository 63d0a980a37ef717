//! Customers' own domains in the platform database: adding, removing and
//! choosing the primary one (portal), retrying (admin), and the state
//! changes the worker's `sync_domains` operation records. Every change is
//! audited in its own transaction, and every request asks for a
//! `sync_domains` operation, which brings DNS checks, certificates and
//! nginx's maps in line with the rows.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::audit;
use crate::domain::custom_domain::{DomainRefused, DomainState, normalize_domain, txt_record_name};
use crate::domain::{LimitExceeded, TenantState, allows_another_domain};
use crate::ops::{self, Actor, OperationKind, OpsQueue, RequestError};

/// One row of `tenant_domains`.
#[derive(Debug, Clone, Serialize)]
pub struct TenantDomain {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// IDNA A-labels, lower case.
    pub domain: String,
    /// What the TXT record at `_odoo-saas.<domain>` must hold.
    pub token: String,
    pub state: DomainState,
    /// Why it is stuck, for the customer.
    pub reason: Option<String>,
    pub is_primary: bool,
    pub cert_issuer: Option<String>,
    pub cert_not_after: Option<DateTime<Utc>>,
    pub renewed_at: Option<DateTime<Utc>>,
    pub renewal_error: Option<String>,
    pub renew_requested_at: Option<DateTime<Utc>>,
    pub checked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl TenantDomain {
    /// The TXT record's name.
    pub fn txt_name(&self) -> String {
        txt_record_name(&self.domain)
    }

    /// The domain as a person reads it (U-labels).
    pub fn display_name(&self) -> String {
        let (unicode, result) = idna::domain_to_unicode(&self.domain);
        if result.is_ok() {
            unicode
        } else {
            self.domain.clone()
        }
    }
}

/// One DNS record a customer creates at their DNS provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsRecord {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: String,
    pub value: String,
}

/// The records that make a domain verifiable: the TXT ownership record,
/// and a CNAME to the instance's host or, where a CNAME cannot be (a
/// zone's apex), address records to the platform's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsRecords {
    pub txt: DnsRecord,
    pub cname: DnsRecord,
    /// `PUBLIC_IPS`, each an A or AAAA record; empty when none is set
    /// (only the CNAME is then sure to match).
    pub addresses: Vec<DnsRecord>,
}

impl TenantDomain {
    /// What to create for this domain, the instance's host being
    /// `tenant_host` (`<subdomain>.<BASE_DOMAIN>`), the worker's checks in
    /// `crates/worker/src/domains/dns.rs`.
    pub fn dns_records(&self, tenant_host: &str, public_ips: &[IpAddr]) -> DnsRecords {
        DnsRecords {
            txt: DnsRecord {
                kind: "TXT",
                name: self.txt_name(),
                value: self.token.clone(),
            },
            cname: DnsRecord {
                kind: "CNAME",
                name: self.domain.clone(),
                value: tenant_host.to_owned(),
            },
            addresses: public_ips
                .iter()
                .map(|ip| DnsRecord {
                    kind: if ip.is_ipv4() { "A" } else { "AAAA" },
                    name: self.domain.clone(),
                    value: ip.to_string(),
                })
                .collect(),
        }
    }
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for TenantDomain {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        let state: String = row.try_get("state")?;
        Ok(Self {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            domain: row.try_get("domain")?,
            token: row.try_get("token")?,
            state: state
                .parse()
                .map_err(|e: String| sqlx::Error::ColumnDecode {
                    index: "state".to_owned(),
                    source: e.into(),
                })?,
            reason: row.try_get("reason")?,
            is_primary: row.try_get("is_primary")?,
            cert_issuer: row.try_get("cert_issuer")?,
            cert_not_after: row.try_get("cert_not_after")?,
            renewed_at: row.try_get("renewed_at")?,
            renewal_error: row.try_get("renewal_error")?,
            renew_requested_at: row.try_get("renew_requested_at")?,
            checked_at: row.try_get("checked_at")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

pub const COLUMNS: &str = "id, tenant_id, domain, token, state, reason, is_primary, cert_issuer, \
     cert_not_after, renewed_at, renewal_error, renew_requested_at, checked_at, created_at";

/// Why a request about a domain was refused.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error(transparent)]
    Invalid(#[from] DomainRefused),
    #[error("domain already used")]
    Taken,
    #[error("{0}")]
    Limit(LimitExceeded),
    #[error("tenant not found")]
    TenantNotFound,
    #[error("domains can be changed only while the instance is active or suspended, not {0}")]
    TenantState(String),
    #[error("domain not found")]
    NotFound,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl DomainError {
    /// The request field the error is about, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            DomainError::Invalid(refused) => Some(refused.field),
            DomainError::Taken | DomainError::Limit(_) => Some("domain"),
            _ => None,
        }
    }
}

impl From<RequestError> for DomainError {
    fn from(err: RequestError) -> Self {
        match err {
            RequestError::TenantNotFound => DomainError::TenantNotFound,
            RequestError::NotAllowed { state, .. } => DomainError::TenantState(state.to_string()),
            RequestError::Transition(refused) => DomainError::TenantState(refused.to_string()),
            RequestError::Database(err) => DomainError::Database(err),
        }
    }
}

/// The tenant's own domains against a plan allowing `max_domains` (a plan
/// change): the excess, if the tenant has more.
pub async fn beyond_plan(
    pool: &PgPool,
    tenant_id: Uuid,
    max_domains: i32,
) -> Result<Option<LimitExceeded>, sqlx::Error> {
    let used: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_domains WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_one(pool)
        .await?;
    let allowed = i64::from(max_domains);
    Ok((used > allowed).then_some(LimitExceeded::Domains { used, allowed }))
}

/// A tenant's domains, primary first, then oldest first.
pub async fn list_for_tenant(
    pool: &PgPool,
    tenant_id: Uuid,
) -> Result<Vec<TenantDomain>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tenant_domains WHERE tenant_id = $1
         ORDER BY is_primary DESC, created_at, domain"
    ))
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

/// One domain of a tenant.
pub async fn get(
    pool: &PgPool,
    tenant_id: Uuid,
    domain_id: Uuid,
) -> Result<Option<TenantDomain>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tenant_domains WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(domain_id)
    .fetch_optional(pool)
    .await
}

/// The primary domain of a tenant once it is live: where its instance is
/// opened and what Odoo's `web.base.url` names.
pub async fn live_primary(pool: &PgPool, tenant_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT domain FROM tenant_domains WHERE tenant_id = $1 AND is_primary AND state = 'live'",
    )
    .bind(tenant_id)
    .fetch_optional(pool)
    .await
}

/// [`live_primary`] of several tenants at once (the instances list).
pub async fn live_primaries(
    pool: &PgPool,
    tenant_ids: &[Uuid],
) -> Result<HashMap<Uuid, String>, sqlx::Error> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT tenant_id, domain FROM tenant_domains
         WHERE tenant_id = ANY($1) AND is_primary AND state = 'live'",
    )
    .bind(tenant_ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

/// A domain with its tenant, for operators.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DomainWithTenant {
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub domain: TenantDomain,
    pub subdomain: String,
    pub tenant_state: String,
}

/// Every domain of every tenant, newest first (admin): those in `state`
/// when given, after `before` (the `(created_at, id)` of the previous
/// page's last row), at most `limit`.
pub async fn list_all(
    pool: &PgPool,
    state: Option<DomainState>,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<DomainWithTenant>, sqlx::Error> {
    let columns = COLUMNS
        .split(", ")
        .map(|c| format!("d.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (at, id) = before.unzip();
    sqlx::query_as(&format!(
        "SELECT {columns}, t.subdomain, t.state AS tenant_state
         FROM tenant_domains d JOIN tenants t ON t.id = d.tenant_id
         WHERE ($1::text IS NULL OR d.state = $1)
           AND ($2::timestamptz IS NULL OR (d.created_at, d.id) < ($2, $3))
         ORDER BY d.created_at DESC, d.id DESC LIMIT $4"
    ))
    .bind(state.map(DomainState::as_str))
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A domain by id, whatever its tenant (admin).
pub async fn find(pool: &PgPool, domain_id: Uuid) -> Result<Option<TenantDomain>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tenant_domains WHERE id = $1"
    ))
    .bind(domain_id)
    .fetch_optional(pool)
    .await
}

fn new_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Locks the tenant and checks it may change domains; returns its plan's
/// domain limit.
async fn lock_tenant(tx: &mut PgConnection, tenant_id: Uuid) -> Result<i32, DomainError> {
    let row: Option<(String, i32)> = sqlx::query_as(
        "SELECT t.state, p.max_domains FROM tenants t JOIN plans p ON p.id = t.plan_id
         WHERE t.id = $1 FOR UPDATE OF t",
    )
    .bind(tenant_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (state, max_domains) = row.ok_or(DomainError::TenantNotFound)?;
    match state.parse::<TenantState>() {
        Ok(TenantState::Active | TenantState::Suspended) => Ok(max_domains),
        _ => Err(DomainError::TenantState(state)),
    }
}

async fn request_sync(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    actor: &Actor,
) -> Result<Uuid, DomainError> {
    let requested = ops::request_change_in(
        tx,
        tenant_id,
        OperationKind::SyncDomains,
        serde_json::json!({}),
        actor,
    )
    .await?;
    Ok(requested.operation.id)
}

/// Adds `raw` (as typed) to the tenant's domains, or returns the row it
/// already has for that name (a repeated request adds nothing: `false`).
/// The first domain becomes the primary one.
#[tracing::instrument(skip_all)]
pub async fn add(
    pool: &PgPool,
    queue: Option<&OpsQueue>,
    tenant_id: Uuid,
    raw: &str,
    base_domain: &str,
    actor: &Actor,
) -> Result<(TenantDomain, bool), DomainError> {
    let domain = normalize_domain(raw, base_domain)?;
    let mut tx = pool.begin().await?;
    let max_domains = lock_tenant(&mut tx, tenant_id).await?;
    let existing: Option<TenantDomain> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tenant_domains WHERE domain = $1"
    ))
    .bind(&domain)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(existing) = existing {
        return if existing.tenant_id == tenant_id {
            Ok((existing, false))
        } else {
            Err(DomainError::Taken)
        };
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_domains WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_one(&mut *tx)
        .await?;
    allows_another_domain(max_domains, count).map_err(DomainError::Limit)?;
    let inserted = sqlx::query_as::<_, TenantDomain>(&format!(
        "INSERT INTO tenant_domains (id, tenant_id, domain, token, is_primary)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(tenant_id)
    .bind(&domain)
    .bind(new_token())
    .bind(count == 0)
    .fetch_one(&mut *tx)
    .await;
    let row = match inserted {
        Ok(row) => row,
        Err(sqlx::Error::Database(db)) if db.constraint() == Some("tenant_domains_domain_key") => {
            return Err(DomainError::Taken);
        }
        Err(err) => return Err(err.into()),
    };
    let operation = request_sync(&mut tx, tenant_id, actor).await?;
    record(
        &mut tx,
        actor,
        "domain.add",
        &row,
        serde_json::json!({ "operation": operation }),
    )
    .await?;
    tx.commit().await?;
    ops::push_after_commit(queue, operation).await;
    Ok((row, true))
}

async fn record(
    tx: &mut PgConnection,
    actor: &Actor,
    action: &str,
    row: &TenantDomain,
    mut details: serde_json::Value,
) -> Result<(), sqlx::Error> {
    if let serde_json::Value::Object(map) = &mut details {
        map.insert("domain".to_owned(), row.domain.clone().into());
        map.insert("tenant".to_owned(), row.tenant_id.to_string().into());
    }
    audit::record(
        tx,
        &audit::Entry {
            actor: &actor.name,
            action,
            target: Some(format!("domain:{}", row.id)),
            address: actor.address,
            details,
        },
    )
    .await?;
    Ok(())
}

/// Removes a domain of the tenant: its route, certificate and challenge
/// files go with the `sync_domains` operation requested here. Another
/// domain (the oldest) becomes primary if this one was. `reason` (an
/// operator's) goes into the audit entry.
#[tracing::instrument(skip_all)]
pub async fn remove(
    pool: &PgPool,
    queue: Option<&OpsQueue>,
    tenant_id: Uuid,
    domain_id: Uuid,
    actor: &Actor,
    reason: Option<&str>,
) -> Result<TenantDomain, DomainError> {
    let mut tx = pool.begin().await?;
    let tenant_state: Option<String> =
        sqlx::query_scalar("SELECT state FROM tenants WHERE id = $1 FOR UPDATE")
            .bind(tenant_id)
            .fetch_optional(&mut *tx)
            .await?;
    let tenant_state = tenant_state.ok_or(DomainError::TenantNotFound)?;
    let removed: Option<TenantDomain> = sqlx::query_as(&format!(
        "DELETE FROM tenant_domains WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(tenant_id)
    .bind(domain_id)
    .fetch_optional(&mut *tx)
    .await?;
    let removed = removed.ok_or(DomainError::NotFound)?;
    if removed.is_primary {
        sqlx::query(
            "UPDATE tenant_domains SET is_primary = true, updated_at = now()
             WHERE id = (SELECT id FROM tenant_domains WHERE tenant_id = $1
                         ORDER BY (state = 'live') DESC, created_at LIMIT 1)",
        )
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    }
    // A tenant being deleted loses its routes anyway; otherwise the
    // worker takes the files away.
    let operation = match tenant_state.parse::<TenantState>() {
        Ok(TenantState::Active | TenantState::Suspended) => {
            Some(request_sync(&mut tx, tenant_id, actor).await?)
        }
        _ => None,
    };
    record(
        &mut tx,
        actor,
        "domain.remove",
        &removed,
        serde_json::json!({ "operation": operation, "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    if let Some(operation) = operation {
        ops::push_after_commit(queue, operation).await;
    }
    Ok(removed)
}

/// Makes a domain the tenant's primary one (where "Open" and Odoo's
/// `web.base.url` point once it is live). Already primary: nothing changes.
#[tracing::instrument(skip_all)]
pub async fn make_primary(
    pool: &PgPool,
    queue: Option<&OpsQueue>,
    tenant_id: Uuid,
    domain_id: Uuid,
    actor: &Actor,
) -> Result<TenantDomain, DomainError> {
    let mut tx = pool.begin().await?;
    lock_tenant(&mut tx, tenant_id).await?;
    let row: Option<TenantDomain> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tenant_domains WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(domain_id)
    .fetch_optional(&mut *tx)
    .await?;
    let mut row = row.ok_or(DomainError::NotFound)?;
    if row.is_primary {
        return Ok(row);
    }
    sqlx::query("UPDATE tenant_domains SET is_primary = false WHERE tenant_id = $1 AND is_primary")
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE tenant_domains SET is_primary = true, updated_at = now() WHERE id = $1")
        .bind(domain_id)
        .execute(&mut *tx)
        .await?;
    row.is_primary = true;
    let operation = request_sync(&mut tx, tenant_id, actor).await?;
    record(
        &mut tx,
        actor,
        "domain.make_primary",
        &row,
        serde_json::json!({ "operation": operation }),
    )
    .await?;
    tx.commit().await?;
    ops::push_after_commit(queue, operation).await;
    Ok(row)
}

/// Tries a domain again: DNS is checked anew when it is not live (a failed
/// issue starts over), a live one gets a new certificate now. `reason` (an
/// operator's) goes into the audit entry.
#[tracing::instrument(skip_all)]
pub async fn retry(
    pool: &PgPool,
    queue: Option<&OpsQueue>,
    domain_id: Uuid,
    actor: &Actor,
    reason: Option<&str>,
) -> Result<TenantDomain, DomainError> {
    let mut tx = pool.begin().await?;
    let tenant_id: Option<Uuid> =
        sqlx::query_scalar("SELECT tenant_id FROM tenant_domains WHERE id = $1")
            .bind(domain_id)
            .fetch_optional(&mut *tx)
            .await?;
    let tenant_id = tenant_id.ok_or(DomainError::NotFound)?;
    lock_tenant(&mut tx, tenant_id).await?;
    let row: Option<TenantDomain> = sqlx::query_as(&format!(
        "UPDATE tenant_domains SET
             renew_requested_at = CASE WHEN state = 'live' THEN now() ELSE renew_requested_at END,
             state = CASE WHEN state IN ('failed', 'verified', 'issuing') THEN 'pending_dns' ELSE state END,
             reason = CASE WHEN state = 'live' THEN reason ELSE NULL END,
             updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(domain_id)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or(DomainError::NotFound)?;
    let operation = request_sync(&mut tx, tenant_id, actor).await?;
    record(
        &mut tx,
        actor,
        "domain.retry",
        &row,
        serde_json::json!({ "operation": operation, "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    ops::push_after_commit(queue, operation).await;
    Ok(row)
}

/// Moves a domain from `from` to `to` with `reason` (the worker), audited
/// when the state changes. False when the row is no longer in `from`
/// (removed, or changed by a request meanwhile).
pub async fn set_state(
    conn: &mut PgConnection,
    domain: &TenantDomain,
    from: DomainState,
    to: DomainState,
    reason: Option<&str>,
    actor: &Actor,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE tenant_domains SET state = $3, reason = $4, checked_at = now(), updated_at = now()
         WHERE id = $1 AND state = $2",
    )
    .bind(domain.id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(reason)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 1 && from != to {
        record(
            conn,
            actor,
            "domain.state",
            domain,
            serde_json::json!({ "from": from, "to": to, "reason": reason }),
        )
        .await?;
    }
    Ok(updated.rows_affected() == 1)
}

/// A certificate the worker installed for a domain.
#[derive(Debug, Clone)]
pub struct Installed<'a> {
    pub issuer: &'a str,
    pub not_after: DateTime<Utc>,
}

/// Records a new certificate: the domain is live, its renewal error and
/// any renewal request cleared. Audited.
pub async fn record_certificate(
    conn: &mut PgConnection,
    domain: &TenantDomain,
    installed: &Installed<'_>,
    actor: &Actor,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE tenant_domains SET state = 'live', reason = NULL, cert_issuer = $2, cert_not_after = $3,
                renewed_at = now(), renewal_error = NULL, renew_requested_at = NULL, updated_at = now()
         WHERE id = $1",
    )
    .bind(domain.id)
    .bind(installed.issuer)
    .bind(installed.not_after)
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() == 1 {
        record(
            conn,
            actor,
            "domain.certificate",
            domain,
            serde_json::json!({
                "from": domain.state,
                "to": DomainState::Live,
                "issuer": installed.issuer,
                "not_after": installed.not_after,
            }),
        )
        .await?;
    }
    Ok(updated.rows_affected() == 1)
}

/// Records a failed renewal of a live domain: the old certificate stays.
pub async fn record_renewal_failure(
    conn: &mut PgConnection,
    domain: &TenantDomain,
    error: &str,
    actor: &Actor,
) -> Result<(), sqlx::Error> {
    let error: String = error.chars().take(2000).collect();
    sqlx::query(
        "UPDATE tenant_domains SET renewal_error = $2, renew_requested_at = NULL, renewed_at = now(),
                updated_at = now()
         WHERE id = $1",
    )
    .bind(domain.id)
    .bind(&error)
    .execute(&mut *conn)
    .await?;
    record(
        conn,
        actor,
        "domain.renewal_failed",
        domain,
        serde_json::json!({ "error": error }),
    )
    .await
}

/// Removes every domain of a deleted tenant (the worker's delete), audited
/// one by one, so the names may be claimed again.
pub async fn remove_all_of_tenant(
    pool: &PgPool,
    tenant_id: Uuid,
    actor: &Actor,
) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let removed: Vec<TenantDomain> = sqlx::query_as(&format!(
        "DELETE FROM tenant_domains WHERE tenant_id = $1 RETURNING {COLUMNS}"
    ))
    .bind(tenant_id)
    .fetch_all(&mut *tx)
    .await?;
    for row in &removed {
        record(
            &mut tx,
            actor,
            "domain.remove",
            row,
            serde_json::json!({ "reason": "the instance was deleted" }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(removed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(name: &str) -> TenantDomain {
        TenantDomain {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            domain: name.to_owned(),
            token: "0123456789abcdef0123456789abcdef".to_owned(),
            state: DomainState::PendingDns,
            reason: None,
            is_primary: true,
            cert_issuer: None,
            cert_not_after: None,
            renewed_at: None,
            renewal_error: None,
            renew_requested_at: None,
            checked_at: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn records_name_the_token_the_host_and_the_platforms_addresses() {
        let row = domain("erp.acme.com");
        let records = row.dns_records("acme.saas.example", &[]);
        assert_eq!(records.txt.name, "_odoo-saas.erp.acme.com");
        assert_eq!(records.txt.value, row.token);
        assert_eq!(
            (records.cname.kind, records.cname.value.as_str()),
            ("CNAME", "acme.saas.example")
        );
        assert!(records.addresses.is_empty());
        let ips: Vec<IpAddr> = ["203.0.113.7", "2001:db8::1"]
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let records = row.dns_records("acme.saas.example", &ips);
        let kinds: Vec<(&str, &str)> = records
            .addresses
            .iter()
            .map(|r| (r.kind, r.value.as_str()))
            .collect();
        assert_eq!(kinds, [("A", "203.0.113.7"), ("AAAA", "2001:db8::1")]);
        assert_eq!(
            domain("xn--bcher-kva.example").display_name(),
            "bücher.example"
        );
    }
}
