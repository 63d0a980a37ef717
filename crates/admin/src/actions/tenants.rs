//! Creating tenants and requesting changes to them: each change is an
//! operation (core writes it and its audit entry in one transaction).

use saas_core::ops::Operation;
use saas_core::ops::{self, OperationKind, RequestError, Requested};
use saas_core::tenants::{self, CreateError, NewTenant, Tenant};
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::{CurrentOperator, Role};
use crate::error::{Error, Result};
use crate::params::{MAX_TEXT, Params, required_text};
use crate::repo;
use crate::state::AppState;

/// A change an operator asks for, with its reason.
#[derive(Debug, Clone)]
pub enum Change {
    Suspend,
    Resume,
    Backup,
    Restore { backup_id: Uuid },
    ChangePlan { plan: Uuid },
    Delete { skip_final_backup: bool },
}

impl Change {
    pub fn kind(&self) -> OperationKind {
        match self {
            Change::Suspend => OperationKind::Suspend,
            Change::Resume => OperationKind::Resume,
            Change::Backup => OperationKind::Backup,
            Change::Restore { .. } => OperationKind::Restore,
            Change::ChangePlan { .. } => OperationKind::ChangePlan,
            Change::Delete { .. } => OperationKind::Delete,
        }
    }

    /// From the action's name (`suspend`, `change-plan`, ...) and its inputs.
    pub fn from_params(action: &str, params: &Params) -> Result<Self> {
        Ok(match action {
            "suspend" => Change::Suspend,
            "resume" => Change::Resume,
            "backup" => Change::Backup,
            "restore" => Change::Restore {
                backup_id: params.uuid("backup_id")?,
            },
            "change-plan" | "change_plan" => Change::ChangePlan {
                plan: params.uuid("plan")?,
            },
            "delete" => Change::Delete {
                skip_final_backup: params.flag("skip_final_backup"),
            },
            _ => return Err(Error::invalid("action", "unknown action")),
        })
    }
}

/// The operation an action's name (`suspend`, `change-plan`, ...) requests.
pub fn kind_of(action: &str) -> Option<OperationKind> {
    Some(match action {
        "suspend" => OperationKind::Suspend,
        "resume" => OperationKind::Resume,
        "backup" => OperationKind::Backup,
        "restore" => OperationKind::Restore,
        "change-plan" | "change_plan" => OperationKind::ChangePlan,
        "delete" => OperationKind::Delete,
        _ => return None,
    })
}

/// The body of every tenant action in the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangeBody {
    pub reason: String,
    pub backup_id: Option<Uuid>,
    pub plan: Option<Uuid>,
    #[serde(default)]
    pub skip_final_backup: bool,
}

impl ChangeBody {
    pub fn change(&self, action: &str) -> Result<Change> {
        let mut params = Vec::new();
        if let Some(backup) = self.backup_id {
            params.push(("backup_id".to_owned(), backup.to_string()));
        }
        if let Some(plan) = self.plan {
            params.push(("plan".to_owned(), plan.to_string()));
        }
        if self.skip_final_backup {
            params.push(("skip_final_backup".to_owned(), "true".to_owned()));
        }
        let encoded = serde_urlencoded::to_string(&params).unwrap_or_default();
        Change::from_params(action, &Params::parse(encoded.as_bytes())?)
    }
}

pub fn request_error(err: RequestError) -> Error {
    match err {
        RequestError::TenantNotFound => Error::NotFound("tenant"),
        RequestError::NotAllowed { .. } | RequestError::Transition(_) => {
            Error::conflict(err.to_string())
        }
        RequestError::Database(err) => err.into(),
    }
}

/// Requests `change` of tenant `id` for `reason`.
pub async fn request(
    state: &AppState,
    user: &CurrentOperator,
    id: Uuid,
    change: Change,
    reason: &str,
) -> Result<Requested> {
    user.require(Role::Operator)?;
    let reason = required_text("reason", reason, MAX_TEXT)?;
    let mut args = serde_json::json!({ "reason": reason });
    match &change {
        Change::Restore { backup_id } => {
            if !repo::tenants::backup_belongs(&state.db, id, *backup_id).await? {
                return Err(Error::invalid("backup_id", "no such backup of this tenant"));
            }
            args["backup_id"] = serde_json::json!(backup_id);
        }
        Change::ChangePlan { plan } => {
            let Some(row) = repo::plans::get(&state.db, *plan).await? else {
                return Err(Error::invalid("plan", "no such plan"));
            };
            if !row.active {
                return Err(Error::invalid("plan", "the plan is not active"));
            }
            args["plan_id"] = serde_json::json!(plan);
            args["plan_code"] = serde_json::json!(row.code);
        }
        Change::Delete { skip_final_backup } => {
            args["final_backup"] = serde_json::json!(!skip_final_backup);
        }
        Change::Suspend | Change::Resume | Change::Backup => {}
    }
    let queue = state.queue().await;
    ops::request_change(
        &state.db,
        queue.as_ref(),
        id,
        change.kind(),
        args,
        &user.actor(),
    )
    .await
    .map_err(request_error)
}

/// What creating a tenant takes from an operator.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenantBody {
    /// Customer id or email.
    pub customer: String,
    /// Plan id or code.
    pub plan: String,
    pub subdomain: String,
    /// The Odoo admin's first password; generated (and returned once) when absent.
    pub admin_password: Option<String>,
}

impl std::fmt::Debug for NewTenantBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewTenantBody")
            .field("customer", &self.customer)
            .field("plan", &self.plan)
            .field("subdomain", &self.subdomain)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "[REDACTED]"),
            )
            .finish()
    }
}

impl NewTenantBody {
    pub fn from_params(params: &Params) -> Self {
        let get = |name: &str| params.get(name).unwrap_or("").to_owned();
        Self {
            customer: get("customer"),
            plan: get("plan"),
            subdomain: get("subdomain"),
            admin_password: params.get("admin_password").map(str::to_owned),
        }
    }
}

pub struct Created {
    pub tenant: Tenant,
    pub operation: Operation,
    /// Set when the password was generated: shown once.
    pub generated_password: Option<String>,
}

pub fn create_error(err: CreateError) -> Error {
    let field = err.field().map(str::to_owned);
    match err {
        CreateError::Subdomain(_)
        | CreateError::PlanNotFound
        | CreateError::PlanInactive
        | CreateError::CustomerNotFound
        | CreateError::CustomerDisabled => {
            Error::invalid(field.unwrap_or_default(), err.to_string())
        }
        CreateError::SubdomainTaken | CreateError::Limit(_) => Error::Conflict {
            message: err.to_string(),
            field,
        },
        CreateError::NoCapacity(_) => Error::Conflict {
            message: err.to_string(),
            field: Some("plan".to_owned()),
        },
        CreateError::Request(err) => request_error(err),
        CreateError::Database(err) => err.into(),
    }
}

pub async fn create(
    state: &AppState,
    user: &CurrentOperator,
    body: NewTenantBody,
) -> Result<Created> {
    user.require(Role::Operator)?;
    let customer_raw = required_text("customer", &body.customer, 254)?;
    let plan_raw = required_text("plan", &body.plan, 100)?;
    let subdomain = required_text("subdomain", &body.subdomain, 63)?;
    let customer = match customer_raw.parse::<Uuid>() {
        Ok(id) => repo::customers::get(&state.db, id).await?,
        Err(_) => repo::customers::by_email(&state.db, &customer_raw).await?,
    }
    .ok_or_else(|| Error::invalid("customer", "no such customer (give an id or an email)"))?;
    let plan = match plan_raw.parse::<Uuid>() {
        Ok(id) => repo::plans::get(&state.db, id).await?,
        Err(_) => repo::plans::by_code(&state.db, &plan_raw).await?,
    }
    .ok_or_else(|| Error::invalid("plan", "no such plan (give an id or a code)"))?;
    if let Err(err) = tenants::subdomain_available(&state.db, &subdomain).await? {
        return Err(create_error(err));
    }
    let (password, generated) = match body.admin_password {
        Some(password) => {
            let length = password.chars().count();
            if !(8..=128).contains(&length) {
                return Err(Error::invalid(
                    "admin_password",
                    "must be 8 to 128 characters long",
                ));
            }
            (password, None)
        }
        None => {
            let password = saas_core::auth::random_token(10);
            (password.clone(), Some(password))
        }
    };
    if password.chars().any(char::is_control) {
        return Err(Error::invalid(
            "admin_password",
            "must not contain control characters",
        ));
    }
    // Sealed for the worker, which hashes it while the template clones.
    let queue = state.queue().await;
    let (tenant, operation) = tenants::create(
        &state.db,
        queue.as_ref(),
        &state.sealing,
        &NewTenant {
            customer_id: customer.id,
            plan_id: plan.id,
            subdomain,
            admin_password: SecretString::from(password),
        },
        &user.actor(),
    )
    .await
    .map_err(create_error)?;
    Ok(Created {
        tenant,
        operation,
        generated_password: generated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_password_never_shows_in_debug_output() {
        let body = NewTenantBody {
            customer: "c@example.com".into(),
            plan: "basic".into(),
            subdomain: "acme".into(),
            admin_password: Some("hunter2-hunter2".into()),
        };
        let shown = format!("{body:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("[REDACTED]"),
            "{shown}"
        );
    }
}
