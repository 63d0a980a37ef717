//! What a customer can do, shared by the web UI and the JSON API: each call
//! checks ownership first (another customer's resource is not found) and
//! translates core errors into [`AppError`]s naming the field at fault.

use saas_core::auth::password;
use saas_core::backups::{self, Backup, NewBackup};
use saas_core::customer_tenants::{self as scoped, Plan};
use saas_core::domain::LimitExceeded;
use saas_core::ops::{self, Operation, OperationKind, RequestError};
use saas_core::sealing::Purpose;
use saas_core::tenants::{self, CreateError, NewTenant, Tenant};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::auth::SignedIn;
use crate::error::AppError;
use crate::state::AppState;
use crate::upload::Received;

/// One of the customer's instances, or 404. Deleted ones count as missing
/// unless `include_deleted`.
pub async fn instance(
    state: &AppState,
    who: &SignedIn,
    id: Uuid,
    include_deleted: bool,
) -> Result<Tenant, AppError> {
    scoped::get(&state.db, who.customer.id, id)
        .await?
        .filter(|t| include_deleted || t.state != "deleted")
        .ok_or(AppError::NotFound)
}

pub async fn backup(state: &AppState, who: &SignedIn, id: Uuid) -> Result<Backup, AppError> {
    backups::get_for_customer(&state.db, who.customer.id, id)
        .await?
        .ok_or(AppError::NotFound)
}

pub async fn operation(state: &AppState, who: &SignedIn, id: Uuid) -> Result<Operation, AppError> {
    scoped::operation(&state.db, who.customer.id, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// The plan named by id or code; the first trial plan when `raw` is empty.
pub async fn pick_plan(state: &AppState, raw: &str) -> Result<Plan, AppError> {
    if raw.trim().is_empty() {
        return scoped::active_plans(&state.db)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| AppError::invalid("plan", "no plan is available"));
    }
    scoped::plan(&state.db, raw)
        .await?
        .filter(|p| p.active)
        .ok_or_else(|| AppError::invalid("plan", "no such plan"))
}

pub struct CreateInstance<'a> {
    pub subdomain: &'a str,
    pub plan: &'a str,
    pub admin_password: &'a str,
}

pub async fn create_instance(
    state: &AppState,
    who: &SignedIn,
    input: &CreateInstance<'_>,
) -> Result<(Tenant, Operation), AppError> {
    if who.customer.email_verified_at.is_none() {
        return Err(AppError::conflict(
            None,
            "verify your email address first: follow the link we sent you",
        ));
    }
    let subdomain = input.subdomain.trim().to_ascii_lowercase();
    if let Err(err) = saas_core::domain::Subdomain::parse(&subdomain) {
        return Err(AppError::invalid("subdomain", format!("subdomain {err}")));
    }
    check_odoo_password(input.admin_password)?;
    let plan = pick_plan(state, input.plan).await?;
    let queue = state.queue().await;
    // Sealed, not hashed: the worker hashes it while the template clones,
    // so this request answers in milliseconds.
    let new = NewTenant {
        customer_id: who.customer.id,
        plan_id: plan.id,
        subdomain,
        admin_password: SecretString::from(input.admin_password.to_owned()),
    };
    tenants::create(
        &state.db,
        queue.as_ref(),
        &state.sealing,
        &new,
        &who.actor(),
    )
    .await
    .map_err(create_error)
}

/// The policy of an Odoo admin password a customer chooses: the platform's
/// password policy, and nothing a login form cannot type.
fn check_odoo_password(password: &str) -> Result<(), AppError> {
    password::check_policy(password)
        .map_err(|e| AppError::invalid("admin_password", format!("password {e}")))?;
    if password.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "admin_password",
            "password must not contain control characters",
        ));
    }
    Ok(())
}

/// Requests a new password for the instance's Odoo admin user: validated,
/// sealed for the worker, which writes its hash into the instance's
/// database. Repeated while the first request still waits, the newest
/// password is the one set.
pub async fn reset_admin_password(
    state: &AppState,
    who: &SignedIn,
    tenant: &Tenant,
    new_password: &str,
) -> Result<Operation, AppError> {
    check_odoo_password(new_password)?;
    let queue = state.queue().await;
    let value = SecretString::from(new_password.to_owned());
    let secret = ops::Secret {
        key: &state.sealing,
        purpose: Purpose::OdooAdminPassword,
        value: &value,
    };
    ops::request_change_with_secret(
        &state.db,
        queue.as_ref(),
        tenant.id,
        OperationKind::ResetAdminPassword,
        json!({}),
        &who.actor(),
        &secret,
    )
    .await
    .map(|r| r.operation)
    .map_err(request_error)
}

fn create_error(err: CreateError) -> AppError {
    let field = err.field();
    match err {
        CreateError::Subdomain(e) => AppError::invalid("subdomain", format!("subdomain {e}")),
        CreateError::SubdomainTaken => {
            AppError::conflict(Some("subdomain"), "this subdomain is already taken")
        }
        CreateError::PlanNotFound | CreateError::PlanInactive => {
            AppError::invalid("plan", err.to_string())
        }
        CreateError::Limit(limit) => AppError::conflict(
            field,
            format!("{limit}: delete an instance or choose a larger plan"),
        ),
        CreateError::NoCapacity(_) => AppError::conflict(
            None,
            "no server can take a new instance right now; please try again later",
        ),
        CreateError::CustomerNotFound | CreateError::CustomerDisabled => AppError::Unauthorized,
        CreateError::Request(e) => request_error(e),
        CreateError::Database(e) => e.into(),
    }
}

pub fn request_error(err: RequestError) -> AppError {
    match err {
        RequestError::TenantNotFound => AppError::NotFound,
        RequestError::NotAllowed { .. } | RequestError::Transition(_) => {
            AppError::conflict(None, err.to_string())
        }
        RequestError::Database(e) => e.into(),
    }
}

async fn request(
    state: &AppState,
    who: &SignedIn,
    tenant: &Tenant,
    kind: OperationKind,
    args: serde_json::Value,
) -> Result<Operation, AppError> {
    let queue = state.queue().await;
    ops::request_change(
        &state.db,
        queue.as_ref(),
        tenant.id,
        kind,
        args,
        &who.actor(),
    )
    .await
    .map(|r| r.operation)
    .map_err(request_error)
}

/// Refuses a manual backup or an upload when the tenant's plan keeps none;
/// otherwise the oldest manual or uploaded one beyond the plan's limit is
/// removed once the new one exists (the instance page says which).
async fn check_manual_backups_allowed(
    state: &AppState,
    tenant: &Tenant,
    field: &'static str,
) -> Result<(), AppError> {
    let plan = scoped::plan(&state.db, &tenant.plan_id.to_string()).await?;
    if plan.is_some_and(|p| p.max_backups <= 0) {
        return Err(AppError::invalid(
            field,
            "your plan keeps no manual or uploaded backups; choose a plan that does",
        ));
    }
    Ok(())
}

pub async fn backup_now(
    state: &AppState,
    who: &SignedIn,
    tenant: &Tenant,
) -> Result<Operation, AppError> {
    check_manual_backups_allowed(state, tenant, "backup").await?;
    request(
        state,
        who,
        tenant,
        OperationKind::Backup,
        json!({ "kind": "manual" }),
    )
    .await
}

fn confirm(tenant: &Tenant, typed: &str) -> Result<(), AppError> {
    if typed.trim() != tenant.subdomain {
        return Err(AppError::invalid(
            "confirm",
            format!("type the instance's name, {}, to confirm", tenant.subdomain),
        ));
    }
    Ok(())
}

/// Restores `backup` into its own instance `tenant`.
pub async fn restore(
    state: &AppState,
    who: &SignedIn,
    tenant: &Tenant,
    backup: &Backup,
    typed: &str,
) -> Result<Operation, AppError> {
    confirm(tenant, typed)?;
    if backup.tenant_id != tenant.id {
        return Err(AppError::invalid(
            "instance",
            "a backup restores into its own instance; download it and upload it into another",
        ));
    }
    request(
        state,
        who,
        tenant,
        OperationKind::Restore,
        json!({ "backup_id": backup.id }),
    )
    .await
}

/// Stores a validated upload under the tenant's prefix, records it as a
/// backup of kind `upload` and requests a restore from it.
pub async fn upload_and_restore(
    state: &AppState,
    who: &SignedIn,
    tenant: &Tenant,
    received: Received,
    typed: &str,
) -> Result<(Backup, Operation), AppError> {
    confirm(tenant, typed)?;
    check_manual_backups_allowed(state, tenant, "file").await?;
    crate::upload::validate(&received.file).await?;
    let store = state.backups()?;
    let key = format!(
        "{}/upload-{}-{}.zip",
        tenant.db_name,
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &Uuid::new_v4().simple().to_string()[..8]
    );
    store.put_file(&key, &received.file).await?;
    let mut tx = state.db.begin().await?;
    let backup = backups::insert(
        &mut tx,
        &NewBackup {
            tenant_id: tenant.id,
            object_key: &key,
            size_bytes: i64::try_from(received.size).unwrap_or(i64::MAX),
            sha256: &received.sha256,
            kind: "upload",
            expires_at: None,
        },
    )
    .await?;
    saas_core::audit::record(
        &mut tx,
        &saas_core::audit::Entry {
            actor: &who.actor().name,
            action: "backup.upload",
            target: Some(format!("tenant:{}", tenant.id)),
            address: who.address,
            details: json!({ "backup": backup.id, "size_bytes": received.size }),
        },
    )
    .await?;
    let requested = ops::request_change_in(
        &mut tx,
        tenant.id,
        OperationKind::Restore,
        json!({ "backup_id": backup.id }),
        &who.actor(),
    )
    .await
    .map_err(request_error)?;
    tx.commit().await?;
    let queue = state.queue().await;
    ops::push_after_commit(queue.as_ref(), requested.operation.id).await;
    Ok((backup, requested.operation))
}

/// Requests a plan change, refused with the reason when the instance's
/// usage exceeds the new plan.
pub async fn change_plan(
    state: &AppState,
    who: &SignedIn,
    tenant: &Tenant,
    raw_plan: &str,
) -> Result<Operation, AppError> {
    if raw_plan.trim().is_empty() {
        return Err(AppError::invalid("plan", "choose a plan"));
    }
    let plan = pick_plan(state, raw_plan).await?;
    if plan.id == tenant.plan_id {
        return Err(AppError::invalid(
            "plan",
            "the instance is already on this plan",
        ));
    }
    let mut exceeded: Vec<LimitExceeded> = plan.limits().exceeded_by(&scoped::usage(tenant));
    let live = scoped::live_count(&state.db, who.customer.id).await?;
    // The same rule as creation: the customer's instances against the plan's limit.
    if let Err(limit) = plan.limits().allows_another_instance(live - 1) {
        exceeded.push(limit);
    }
    // The instance's own domains against the new plan's limit.
    exceeded.extend(saas_core::domains::beyond_plan(&state.db, tenant.id, plan.max_domains).await?);
    if !exceeded.is_empty() {
        let reasons: Vec<String> = exceeded.iter().map(ToString::to_string).collect();
        return Err(AppError::conflict(
            Some("plan"),
            format!("{} does not fit: {}", plan.name, reasons.join("; ")),
        ));
    }
    request(
        state,
        who,
        tenant,
        OperationKind::ChangePlan,
        json!({ "plan_id": plan.id, "plan_code": plan.code }),
    )
    .await
}

/// Requests deletion after a typed confirmation; the worker takes a final
/// backup that is kept for the plan's grace period.
pub async fn delete(
    state: &AppState,
    who: &SignedIn,
    tenant: &Tenant,
    typed: &str,
) -> Result<Operation, AppError> {
    confirm(tenant, typed)?;
    let grace_days = scoped::plan(&state.db, &tenant.plan_id.to_string())
        .await?
        .map_or(14, |p| p.grace_days);
    request(
        state,
        who,
        tenant,
        OperationKind::Delete,
        json!({ "final_backup": true, "grace_days": grace_days }),
    )
    .await
}
