//! Plans and servers: validated input, create/update/delete with audit.

use saas_core::domain::PlanLimits;
use serde::Deserialize;
use uuid::Uuid;

use super::record;
use crate::auth::{CurrentOperator, Role};
use crate::error::{Error, Result};
use crate::params::{Params, check_text, required_text};
use crate::repo::plans::{self, PlanError, PlanInput};
use crate::repo::servers::{self, ServerError, ServerInput};
use crate::state::AppState;

/// A plan's fields, each optional: all of the required ones for a new plan,
/// any of them for a change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanPatch {
    pub code: Option<String>,
    pub name: Option<String>,
    pub max_users: Option<i32>,
    pub max_storage_mb: Option<i32>,
    pub max_backups: Option<i32>,
    pub max_instances: Option<i32>,
    pub max_domains: Option<i32>,
    pub template: Option<String>,
    pub modules: Option<Vec<String>>,
    pub trial_days: Option<i32>,
    pub grace_days: Option<i32>,
    pub backup_hour_utc: Option<i32>,
    pub price_cents: Option<i64>,
    pub currency: Option<String>,
    pub active: Option<bool>,
}

/// A new plan's own domains per tenant when none is given (the column's
/// default).
const DEFAULT_MAX_DOMAINS: i32 = 2;

fn int32(params: &Params, name: &str) -> Result<Option<i32>> {
    params.opt_parse(name, "must be a whole number")
}

impl PlanPatch {
    /// From a form: every field present (an unchecked `active` is false).
    pub fn from_params(params: &Params) -> Result<Self> {
        let text = |name: &str| params.get(name).map(str::to_owned);
        Ok(Self {
            code: text("code"),
            name: text("name"),
            max_users: int32(params, "max_users")?,
            max_storage_mb: int32(params, "max_storage_mb")?,
            max_backups: int32(params, "max_backups")?,
            max_instances: int32(params, "max_instances")?,
            max_domains: int32(params, "max_domains")?,
            template: text("template"),
            modules: Some(
                params
                    .get("modules")
                    .unwrap_or("")
                    .split([',', ' ', '\n'])
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            trial_days: int32(params, "trial_days")?,
            grace_days: int32(params, "grace_days")?,
            backup_hour_utc: int32(params, "backup_hour_utc")?,
            price_cents: params.opt_parse("price_cents", "must be a whole number")?,
            currency: text("currency"),
            active: Some(params.flag("active")),
        })
    }

    /// `base` with this patch applied, validated; `base` None means a new plan.
    pub fn apply(self, base: Option<PlanInput>) -> Result<PlanInput> {
        let required = |field: &str| Error::invalid(field, "must not be empty");
        let plan = match base {
            Some(base) => PlanInput {
                code: self.code.unwrap_or(base.code),
                name: self.name.unwrap_or(base.name),
                max_users: self.max_users.unwrap_or(base.max_users),
                max_storage_mb: self.max_storage_mb.unwrap_or(base.max_storage_mb),
                max_backups: self.max_backups.unwrap_or(base.max_backups),
                max_instances: self.max_instances.unwrap_or(base.max_instances),
                max_domains: self.max_domains.unwrap_or(base.max_domains),
                template: self.template.unwrap_or(base.template),
                modules: self.modules.unwrap_or(base.modules),
                trial_days: self.trial_days.unwrap_or(base.trial_days),
                grace_days: self.grace_days.unwrap_or(base.grace_days),
                backup_hour_utc: self.backup_hour_utc.unwrap_or(base.backup_hour_utc),
                price_cents: self.price_cents.unwrap_or(base.price_cents),
                currency: self.currency.unwrap_or(base.currency),
                active: self.active.unwrap_or(base.active),
            },
            None => PlanInput {
                code: self.code.ok_or_else(|| required("code"))?,
                name: self.name.ok_or_else(|| required("name"))?,
                max_users: self.max_users.ok_or_else(|| required("max_users"))?,
                max_storage_mb: self
                    .max_storage_mb
                    .ok_or_else(|| required("max_storage_mb"))?,
                max_backups: self.max_backups.unwrap_or(7),
                max_instances: self.max_instances.unwrap_or(1),
                max_domains: self.max_domains.unwrap_or(DEFAULT_MAX_DOMAINS),
                template: self.template.ok_or_else(|| required("template"))?,
                modules: self.modules.unwrap_or_default(),
                trial_days: self.trial_days.unwrap_or(0),
                grace_days: self.grace_days.unwrap_or(14),
                backup_hour_utc: self.backup_hour_utc.unwrap_or(2),
                price_cents: self.price_cents.unwrap_or(0),
                currency: self.currency.unwrap_or_else(|| "EUR".to_owned()),
                active: self.active.unwrap_or(true),
            },
        };
        validate_plan(plan)
    }
}

fn identifier(field: &str, value: &str, max: usize, allow_dash: bool) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= max
        && value.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || (allow_dash && b == b'-')
        });
    if ok {
        Ok(())
    } else {
        let dash = if allow_dash { ", hyphens" } else { "" };
        Err(Error::invalid(
            field,
            format!("must be 1 to {max} lower-case letters, digits, underscores{dash}"),
        ))
    }
}

fn validate_plan(mut plan: PlanInput) -> Result<PlanInput> {
    plan.code = required_text("code", &plan.code, 40)?;
    identifier("code", &plan.code, 40, true)?;
    if plan.code.len() < 2 || !plan.code.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(Error::invalid(
            "code",
            "must be 2 to 40 characters and start with a letter or digit",
        ));
    }
    plan.name = required_text("name", &plan.name, 100)?;
    plan.template = required_text("template", &plan.template, 40)?;
    identifier("template", &plan.template, 40, false)?;
    if plan.modules.len() > 200 {
        return Err(Error::invalid("modules", "at most 200 modules"));
    }
    for module in &plan.modules {
        identifier("modules", module, 64, false)?;
    }
    PlanLimits {
        max_users: plan.max_users,
        max_storage_mb: plan.max_storage_mb,
        max_backups: plan.max_backups,
        max_instances: plan.max_instances,
        max_domains: plan.max_domains,
        trial_days: plan.trial_days,
    }
    .validate()
    .map_err(|err| Error::invalid(err.field, err.reason))?;
    for (field, value, max) in [
        ("trial_days", plan.trial_days, 3650),
        ("grace_days", plan.grace_days, 3650),
        ("backup_hour_utc", plan.backup_hour_utc, 23),
    ] {
        if !(0..=max).contains(&value) {
            return Err(Error::invalid(field, format!("must be from 0 to {max}")));
        }
    }
    if plan.price_cents < 0 {
        return Err(Error::invalid("price_cents", "must not be negative"));
    }
    plan.currency = plan.currency.trim().to_uppercase();
    if plan.currency.len() != 3 || !plan.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::invalid(
            "currency",
            "must be a three-letter code such as EUR",
        ));
    }
    Ok(plan)
}

fn plan_error(err: PlanError) -> Error {
    match err {
        PlanError::CodeTaken => Error::Conflict {
            message: err.to_string(),
            field: Some("code".to_owned()),
        },
        PlanError::InUse(_) => Error::conflict(err.to_string()),
        PlanError::Database(err) => err.into(),
    }
}

fn input_of(row: plans::PlanRow) -> PlanInput {
    PlanInput {
        code: row.code,
        name: row.name,
        max_users: row.max_users,
        max_storage_mb: row.max_storage_mb,
        max_backups: row.max_backups,
        max_instances: row.max_instances,
        max_domains: row.max_domains,
        template: row.template,
        modules: row.modules,
        trial_days: row.trial_days,
        grace_days: row.grace_days,
        backup_hour_utc: row.backup_hour_utc,
        price_cents: row.price_cents,
        currency: row.currency,
        active: row.active,
    }
}

/// Creates (`id` None) or changes a plan; returns its id.
pub async fn save_plan(
    state: &AppState,
    user: &CurrentOperator,
    id: Option<Uuid>,
    patch: PlanPatch,
) -> Result<Uuid> {
    user.require(Role::Operator)?;
    let base = match id {
        Some(id) => Some(input_of(
            plans::get(&state.db, id)
                .await?
                .ok_or(Error::NotFound("plan"))?,
        )),
        None => None,
    };
    let current_template = base.as_ref().map(|b| b.template.clone());
    let plan = patch.apply(base)?;
    if current_template.as_deref() != Some(plan.template.as_str()) {
        check_template(state, &plan.template).await?;
    }
    let mut tx = state.db.begin().await?;
    let saved = plans::save(&mut tx, id, &plan)
        .await
        .map_err(plan_error)?
        .ok_or(Error::NotFound("plan"))?;
    let action = if id.is_some() {
        "plan.update"
    } else {
        "plan.create"
    };
    record(
        &mut tx,
        user,
        action,
        format!("plan:{saved}"),
        serde_json::json!({ "code": plan.code, "name": plan.name, "active": plan.active }),
    )
    .await?;
    tx.commit().await?;
    Ok(saved)
}

/// A plan's template must be one the worker found on an active server (a
/// plan whose template is missing could never be provisioned); a plan
/// keeps the one it has even while it is missing.
async fn check_template(state: &AppState, template: &str) -> Result<()> {
    let available = plans::available_templates(&state.db).await?;
    if available.iter().any(|t| t == template) {
        return Ok(());
    }
    let reason = if available.is_empty() {
        "no template has been found on any active server yet: build them (the odoo-templates \
         service) and wait for the worker to list them"
            .to_owned()
    } else {
        format!(
            "no active server has tpl_{template}; choose one of {}",
            available.join(", ")
        )
    };
    Err(Error::invalid("template", reason))
}

pub async fn delete_plan(state: &AppState, user: &CurrentOperator, id: Uuid) -> Result<()> {
    user.require(Role::Operator)?;
    let mut tx = state.db.begin().await?;
    if !plans::delete(&mut tx, id).await.map_err(plan_error)? {
        return Err(Error::NotFound("plan"));
    }
    record(
        &mut tx,
        user,
        "plan.delete",
        format!("plan:{id}"),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerPatch {
    pub name: Option<String>,
    pub public_url: Option<String>,
    pub internal_url: Option<String>,
    pub pg_url: Option<String>,
    pub odoo_db_role: Option<String>,
    pub filestore_root: Option<String>,
    pub capacity: Option<i32>,
    pub active: Option<bool>,
}

impl ServerPatch {
    pub fn from_params(params: &Params) -> Result<Self> {
        let text = |name: &str| params.get(name).map(str::to_owned);
        Ok(Self {
            name: text("name"),
            public_url: text("public_url"),
            internal_url: text("internal_url"),
            pg_url: text("pg_url"),
            odoo_db_role: text("odoo_db_role"),
            filestore_root: text("filestore_root"),
            capacity: params.opt_parse("capacity", "must be a whole number")?,
            active: Some(params.flag("active")),
        })
    }

    fn apply(self, base: Option<ServerInput>) -> Result<ServerInput> {
        let required = |field: &str| Error::invalid(field, "must not be empty");
        let server = match base {
            Some(base) => ServerInput {
                name: self.name.unwrap_or(base.name),
                public_url: self.public_url.unwrap_or(base.public_url),
                internal_url: self.internal_url.unwrap_or(base.internal_url),
                // Empty keeps the stored URL, which is never shown.
                pg_url: self.pg_url.unwrap_or_default(),
                odoo_db_role: self.odoo_db_role.unwrap_or(base.odoo_db_role),
                filestore_root: self.filestore_root.unwrap_or(base.filestore_root),
                capacity: self.capacity.unwrap_or(base.capacity),
                active: self.active.unwrap_or(base.active),
            },
            None => ServerInput {
                name: self.name.ok_or_else(|| required("name"))?,
                public_url: self.public_url.ok_or_else(|| required("public_url"))?,
                internal_url: self.internal_url.ok_or_else(|| required("internal_url"))?,
                pg_url: self.pg_url.ok_or_else(|| required("pg_url"))?,
                odoo_db_role: self.odoo_db_role.unwrap_or_else(|| "odoo".to_owned()),
                filestore_root: self
                    .filestore_root
                    .ok_or_else(|| required("filestore_root"))?,
                capacity: self.capacity.ok_or_else(|| required("capacity"))?,
                active: self.active.unwrap_or(true),
            },
        };
        validate_server(server)
    }
}

fn url(field: &str, value: &str, schemes: &[&str]) -> Result<String> {
    let value = required_text(field, value, 500)?;
    let ok = value.split_once("://").is_some_and(|(scheme, rest)| {
        schemes.contains(&scheme) && !rest.is_empty() && !rest.contains(char::is_whitespace)
    });
    if ok {
        Ok(value)
    } else {
        Err(Error::invalid(
            field,
            format!("must be a URL starting with {}://", schemes.join(":// or ")),
        ))
    }
}

fn validate_server(mut server: ServerInput) -> Result<ServerInput> {
    server.name = required_text("name", &server.name, 100)?;
    server.public_url = url("public_url", &server.public_url, &["http", "https"])?;
    server.internal_url = url("internal_url", &server.internal_url, &["http", "https"])?;
    if !server.pg_url.is_empty() {
        server.pg_url = url("pg_url", &server.pg_url, &["postgres", "postgresql"])?;
    }
    server.odoo_db_role = check_text("odoo_db_role", &server.odoo_db_role, 63)?;
    identifier("odoo_db_role", &server.odoo_db_role, 63, false)?;
    server.filestore_root = required_text("filestore_root", &server.filestore_root, 500)?;
    if !server.filestore_root.starts_with('/') {
        return Err(Error::invalid("filestore_root", "must be an absolute path"));
    }
    if !(0..=100_000).contains(&server.capacity) {
        return Err(Error::invalid("capacity", "must be from 0 to 100000"));
    }
    Ok(server)
}

fn server_error(err: ServerError) -> Error {
    match err {
        ServerError::NameTaken => Error::Conflict {
            message: err.to_string(),
            field: Some("name".to_owned()),
        },
        ServerError::InUse(_) => Error::conflict(err.to_string()),
        ServerError::Database(err) => err.into(),
    }
}

pub async fn save_server(
    state: &AppState,
    user: &CurrentOperator,
    id: Option<Uuid>,
    patch: ServerPatch,
) -> Result<Uuid> {
    user.require(Role::Owner)?;
    let base = match id {
        Some(id) => {
            let row = servers::get(&state.db, id)
                .await?
                .ok_or(Error::NotFound("server"))?;
            Some(ServerInput {
                name: row.name,
                public_url: row.public_url,
                internal_url: row.internal_url,
                pg_url: String::new(),
                odoo_db_role: row.odoo_db_role,
                filestore_root: row.filestore_root,
                capacity: row.capacity,
                active: row.active,
            })
        }
        None => None,
    };
    let server = patch.apply(base)?;
    let mut tx = state.db.begin().await?;
    let saved = servers::save(&mut tx, id, &server)
        .await
        .map_err(server_error)?
        .ok_or(Error::NotFound("server"))?;
    let action = if id.is_some() {
        "server.update"
    } else {
        "server.create"
    };
    record(
        &mut tx,
        user,
        action,
        format!("server:{saved}"),
        serde_json::json!({ "name": server.name, "capacity": server.capacity, "active": server.active }),
    )
    .await?;
    tx.commit().await?;
    Ok(saved)
}

pub async fn delete_server(state: &AppState, user: &CurrentOperator, id: Uuid) -> Result<()> {
    user.require(Role::Owner)?;
    let mut tx = state.db.begin().await?;
    if !servers::delete(&mut tx, id).await.map_err(server_error)? {
        return Err(Error::NotFound("server"));
    }
    record(
        &mut tx,
        user,
        "server.delete",
        format!("server:{id}"),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
