//! Reading the audit log: filters, keyset pagination by id, CSV export.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::{Page, like_prefix, limit_clause};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub address: Option<String>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Prefix of the actor, e.g. `operator:` or `operator:ops@example.com`.
    pub actor: Option<String>,
    /// Prefix of the action, e.g. `tenant.` or `tenant.suspend`.
    pub action: Option<String>,
    /// Exact target, e.g. `tenant:<id>`.
    pub target: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Entries older than this id.
    pub before: Option<i64>,
    pub limit: i64,
}

pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Page<AuditRow>, sqlx::Error> {
    let mut query: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT id, actor, action, target, host(address) AS address, details, created_at
         FROM audit_log WHERE true",
    );
    if let Some(actor) = &filter.actor {
        query.push(" AND actor LIKE ").push_bind(like_prefix(actor));
    }
    if let Some(action) = &filter.action {
        query
            .push(" AND action LIKE ")
            .push_bind(like_prefix(action));
    }
    if let Some(target) = &filter.target {
        query.push(" AND target = ").push_bind(target.clone());
    }
    if let Some(since) = filter.since {
        query.push(" AND created_at >= ").push_bind(since);
    }
    if let Some(until) = filter.until {
        query.push(" AND created_at < ").push_bind(until);
    }
    if let Some(before) = filter.before {
        query.push(" AND id < ").push_bind(before);
    }
    query
        .push(" ORDER BY id DESC")
        .push(limit_clause(filter.limit));
    let rows: Vec<AuditRow> = query.build_query_as().fetch_all(pool).await?;
    Ok(Page::from_rows(rows, filter.limit, |row| {
        row.id.to_string()
    }))
}

/// One CSV field, quoted when it needs to be; a leading `=+-@` is
/// neutralised so a spreadsheet never runs it as a formula.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

pub fn to_csv(rows: &[AuditRow]) -> String {
    let mut out = String::from("id,created_at,actor,action,target,address,details\n");
    for row in rows {
        let fields = [
            row.id.to_string(),
            row.created_at.to_rfc3339(),
            row.actor.clone(),
            row.action.clone(),
            row.target.clone().unwrap_or_default(),
            row.address.clone().unwrap_or_default(),
            row.details.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }
}
