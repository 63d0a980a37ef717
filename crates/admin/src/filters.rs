//! Listing filters from query parameters, shared by pages and the API.

use chrono::{DateTime, NaiveDate, Utc};
use saas_core::domain::TenantState;
use saas_core::ops::{OperationKind, OperationState};

use crate::error::{Error, Result};
use crate::params::Params;
use crate::repo::{audit, customers, domains, operations, tenants};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

pub fn limit(params: &Params) -> Result<i64> {
    params.int_or("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
}

fn bad_cursor() -> Error {
    Error::invalid(
        "cursor",
        "is not a cursor of this listing (use next_cursor as given)",
    )
}

pub fn tenants(params: &Params) -> Result<tenants::Filter> {
    let sort: tenants::Sort = params
        .opt_parse("sort", "must be created or name")?
        .unwrap_or_default();
    let state = params
        .opt_parse::<TenantState>(
            "state",
            "must be a tenant state such as active or suspended",
        )?
        .map(|s| s.as_str().to_owned());
    let cursor = match params.get("cursor") {
        None => None,
        Some(raw) => Some(tenants::Cursor::parse(raw, sort).ok_or_else(bad_cursor)?),
    };
    Ok(tenants::Filter {
        q: params.opt_text("q", 254)?,
        state,
        plan: params.opt_uuid("plan")?,
        server: params.opt_uuid("server")?,
        customer: params.opt_uuid("customer")?,
        sort,
        cursor,
        limit: limit(params)?,
    })
}

pub fn customers(params: &Params) -> Result<customers::Filter> {
    let cursor = match params.get("cursor") {
        None => None,
        Some(raw) => Some(customers::parse_cursor(raw).ok_or_else(bad_cursor)?),
    };
    Ok(customers::Filter {
        q: params.opt_text("q", 254)?,
        disabled: params.opt_parse("disabled", "must be true or false")?,
        cursor,
        limit: limit(params)?,
    })
}

pub fn domains(params: &Params) -> Result<domains::Filter> {
    let cursor = match params.get("cursor") {
        None => None,
        Some(raw) => Some(customers::parse_cursor(raw).ok_or_else(bad_cursor)?),
    };
    Ok(domains::Filter {
        state: params.opt_parse(
            "state",
            "must be pending_dns, verified, issuing, live or failed",
        )?,
        cursor,
        limit: limit(params)?,
    })
}

pub fn operations(params: &Params) -> Result<operations::Filter> {
    let cursor = match params.get("cursor") {
        None => None,
        Some(raw) => Some(operations::parse_cursor(raw).ok_or_else(bad_cursor)?),
    };
    Ok(operations::Filter {
        state: params
            .opt_parse::<OperationState>(
                "state",
                "must be queued, running, succeeded, failed or cancelled",
            )?
            .map(|s| s.as_str().to_owned()),
        kind: params
            .opt_parse::<OperationKind>(
                "kind",
                "must be an operation kind such as provision or backup",
            )?
            .map(|k| k.as_str().to_owned()),
        tenant: params.opt_uuid("tenant")?,
        cursor,
        limit: limit(params)?,
    })
}

/// A time given as RFC 3339 or as a date (midnight UTC).
fn time(params: &Params, name: &str) -> Result<Option<DateTime<Utc>>> {
    let Some(raw) = params.get(name) else {
        return Ok(None);
    };
    if let Ok(at) = DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(at.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| Some(d.and_utc()))
        .ok_or_else(|| Error::invalid(name, "must be a date (2024-01-31) or an RFC 3339 time"))
}

pub fn audit(params: &Params, max_limit: i64) -> Result<audit::Filter> {
    Ok(audit::Filter {
        actor: params.opt_text("actor", 300)?,
        action: params.opt_text("action", 100)?,
        target: params.opt_text("target", 300)?,
        since: time(params, "since")?,
        until: time(params, "until")?,
        before: params.opt_parse::<i64>(
            "cursor",
            "is not a cursor of this listing (use next_cursor as given)",
        )?,
        limit: params.int_or("limit", DEFAULT_LIMIT.min(max_limit), 1, max_limit)?,
    })
}
