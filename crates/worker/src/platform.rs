//! The platform's handlers: what each operation kind does to a tenant, using
//! the Odoo data plane (`saas-odoo`) and the platform database.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use saas_core::config::DataPlaneSettings;
use saas_core::domain::{PlanLimits, TenantState, Usage, transition};
use saas_core::ops::{Operation, OperationKind};
use saas_core::public_url::PublicUrls;
use saas_core::sealing::SealingKey;
use saas_odoo::{BackupStore, OdooError, ProbeOptions, ProvisionOptions, ProvisionSpec};
use sqlx::PgPool;
use uuid::Uuid;

use crate::handlers::{HandlerError, Handlers, Maintenance};
use crate::lease::Lease;
use crate::servers::{self, TenantPlacement};
use saas_core::error_chain::Chain;

/// Handlers backed by the platform database and the Odoo data plane.
pub struct PlatformHandlers {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub pool: PgPool,
    /// `BACKUP_STORE_URL`: every backup is written here first.
    pub store: BackupStore,
    /// `BACKUP_REPLICA_URL`: every backup is copied here too.
    pub replica: Option<BackupStore>,
    pub settings: DataPlaneSettings,
    /// Where tenants are reached from outside (`web.base.url`).
    pub public: PublicUrls,
    /// Opens the Odoo passwords requests sealed (`SECRET_KEY`).
    pub sealing: SealingKey,
    /// Customers' own domains: DNS, ACME, the certificate store.
    pub domains: crate::domains::Domains,
}

impl PlatformHandlers {
    pub fn new(
        pool: PgPool,
        settings: DataPlaneSettings,
        public: PublicUrls,
        sealing: SealingKey,
    ) -> Result<Self, OdooError> {
        let (store, replica) = BackupStore::from_settings(&settings.backup)?;
        let domains = crate::domains::Domains::new(settings.domains.clone()).map_err(|reason| {
            OdooError::Invalid {
                what: "DNS_RESOLVERS",
                reason,
            }
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                store,
                replica,
                settings,
                public,
                sealing,
                domains,
            }),
        })
    }
}

impl Handlers for PlatformHandlers {
    fn run(
        &self,
        operation: Operation,
        lease: Lease,
    ) -> BoxFuture<'static, Result<(), HandlerError>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            let placement = servers::placement(&inner.pool, operation.tenant_id).await?;
            let lease = &lease;
            match operation.kind {
                OperationKind::Provision => provision(&inner, &placement, &operation, lease).await,
                OperationKind::Backup => backup(&inner, &placement, &operation, lease).await,
                OperationKind::Restore => restore(&inner, &placement, &operation, lease).await,
                OperationKind::Suspend => {
                    suspend_or_resume(&inner, &placement, &operation, lease, true).await
                }
                OperationKind::Resume => {
                    suspend_or_resume(&inner, &placement, &operation, lease, false).await
                }
                OperationKind::ChangePlan => {
                    change_plan(&inner, &placement, &operation, lease).await
                }
                OperationKind::Delete => delete(&inner, &placement, &operation, lease).await,
                OperationKind::CollectUsage => collect_usage(&inner, &placement).await,
                OperationKind::HealthCheck => health_check(&inner, &placement).await,
                OperationKind::PruneBackups => prune_backups(&inner, &placement).await,
                OperationKind::ResetAdminPassword => {
                    reset_admin_password(&inner, &placement, &operation, lease).await
                }
                OperationKind::SyncDomains => {
                    crate::domains::sync(&inner, &placement, &operation, lease).await
                }
            }
        })
    }

    fn maintain(&self, context: Maintenance) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            if let Err(err) = servers::refresh_templates(&inner.pool).await {
                tracing::warn!(error = %Chain(err.as_ref()), "refreshing server templates failed");
            }
            seed_template_plans(&inner.pool, &inner.settings.templates).await;
            if let Err(err) = servers::write_routing_map(&inner).await {
                tracing::warn!(error = %Chain(&err), "writing the routing map failed");
            }
            match servers::drop_leftover_guests(&inner.pool).await {
                Ok(0) => {}
                Ok(dropped) => tracing::warn!(dropped, "guest roles left by a crash dropped"),
                Err(err) => {
                    tracing::warn!(error = %Chain(err.as_ref()), "dropping leftover guests failed")
                }
            }
            match crate::failed_provisions::sweep(&inner.pool).await {
                Ok(0) => {}
                Ok(cleaned) => tracing::info!(cleaned, "failed provisions cleaned"),
                Err(err) => {
                    tracing::warn!(error = %Chain(&err), "sweeping failed provisions failed")
                }
            }
            match crate::schedule::run_once(&inner.pool, &context.queue).await {
                Ok(0) => {}
                Ok(requested) => tracing::info!(requested, "schedules requested operations"),
                Err(err) => tracing::warn!(error = %Chain(err.as_ref()), "schedules failed"),
            }
            crate::replica::replicate_missing(&inner).await;
            crate::domains::sweep(&inner).await;
            if let Err(err) = crate::domains::expiry_metrics(&inner.pool).await {
                tracing::warn!(error = %Chain(&err), "certificate expiry metrics failed");
            }
            if let Err(err) = expire_backups_of_deleted_tenants(&inner).await {
                tracing::warn!(error = %err.message, "expiring backups of deleted tenants failed");
            }
            if let Err(err) = crate::schedule::backup_metrics(&inner.pool, &context.metrics).await {
                tracing::warn!(error = %Chain(err.as_ref()), "backup metrics failed");
            }
        })
    }

    fn watch_readiness(&self, components: &saas_core::readiness::Components) {
        let stores = std::iter::once(&self.inner.store)
            .chain(self.inner.replica.as_ref())
            .map(|store| (store.role(), store.opened()))
            .collect();
        saas_core::backup_store::watch_readiness(components.add("backup_store"), stores);
    }

    fn failed(&self, operation: Operation, error: String) -> BoxFuture<'static, ()> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move {
            if operation.kind != OperationKind::Provision {
                return;
            }
            let tenant = operation.tenant_id;
            let marked = set_state(
                &inner.pool,
                None,
                tenant,
                TenantState::Provisioning,
                TenantState::Failed,
            )
            .await;
            match marked {
                Ok(()) => {
                    tracing::error!(%tenant, %error, "provisioning failed; tenant marked failed")
                }
                Err(err) => {
                    tracing::error!(error = %Chain(&err), "could not mark the tenant failed")
                }
            }
            // What the attempts left goes now; the maintenance sweep retries
            // if this fails (and cleans up after cancelled provisions).
            if let Err(err) = crate::failed_provisions::clean(&inner.pool, tenant).await {
                tracing::warn!(%tenant, error = %Chain(&err), "cleaning the failed provision failed; the sweep retries");
            }
        })
    }
}

/// Plans for the templates of `ODOO_TEMPLATES` found built for the first
/// time (see `saas_core::template_plans`); a failure is retried at the next
/// maintenance.
pub(crate) async fn seed_template_plans(
    pool: &PgPool,
    templates: &[saas_core::config::TemplateSpec],
) {
    if templates.is_empty() {
        return;
    }
    if let Err(err) = saas_core::template_plans::seed(pool, templates).await {
        tracing::warn!(error = %Chain(&err), "creating plans for new templates failed");
    }
}

/// Translates a data-plane error: what may pass by retrying is transient.
/// The customer reads the data plane's customer message, never the chain
/// (which can hold psql's output).
pub(crate) fn odoo_error(err: OdooError) -> HandlerError {
    let message = error_chain(&err);
    let customer = err.customer_message();
    let translated = match err {
        OdooError::TemplateBusy { .. }
        | OdooError::ProbeTimeout { .. }
        | OdooError::Database(_)
        | OdooError::Io { .. }
        | OdooError::Storage(_)
        | OdooError::Task(_)
        | OdooError::ToolFailed { .. }
        | OdooError::SessionsRemain { .. } => HandlerError::transient(message),
        _ => HandlerError::permanent(message),
    };
    translated.telling_customer(customer)
}

pub(crate) use saas_core::error_chain::chain as error_chain;

pub(crate) fn arg_str<'a>(operation: &'a Operation, key: &str) -> Result<&'a str, HandlerError> {
    operation.args[key].as_str().ok_or_else(|| {
        HandlerError::permanent(format!("argument {key} is missing or not a string"))
    })
}

async fn provision(
    inner: &Inner,
    placement: &TenantPlacement,
    operation: &Operation,
    lease: &Lease,
) -> Result<(), HandlerError> {
    let server = placement.server()?;
    let spec = ProvisionSpec {
        tenant_id: placement.tenant_id,
        db_name: placement.db_name.clone(),
        template: format!("tpl_{}", placement.template),
        base_url: tenant_base_url(inner, placement)?,
        company_name: arg_str(operation, "company_name")?.to_owned(),
        admin_login: arg_str(operation, "admin_login")?.to_owned(),
        admin_password: crate::secrets::provision_password(inner, operation).await?,
    };
    let probe = (!inner.settings.probe_timeout.is_zero()).then(|| ProbeOptions {
        timeout: inner.settings.probe_timeout,
        ..ProbeOptions::default()
    });
    let options = ProvisionOptions {
        probe,
        ..ProvisionOptions::default()
    };
    let report = fenced(lease, saas_odoo::provision(&server, &spec, &options)).await?;
    tracing::info!(
        clone_ms = report.clone_time.as_millis() as u64,
        total_ms = report.total_time.as_millis() as u64,
        "tenant database ready"
    );
    set_state(
        &inner.pool,
        Some(lease),
        operation.tenant_id,
        TenantState::Provisioning,
        TenantState::Active,
    )
    .await?;
    // The customer sees real usage from the first page, not only after the
    // hourly schedule.
    if let Err(err) = collect_usage(inner, placement).await {
        tracing::warn!(error = %Chain(&err), "first usage collection failed; the schedule retries");
    }
    servers::write_routing_map(inner).await
}

/// The tenant's public URL, Odoo's `web.base.url`: `PUBLIC_SCHEME`,
/// `BASE_DOMAIN` and `PUBLIC_PORT` (left out when it is the default).
pub(crate) fn tenant_base_url(
    inner: &Inner,
    placement: &TenantPlacement,
) -> Result<url::Url, HandlerError> {
    saas_odoo::tenant_base_url(
        inner.public.scheme(),
        &placement.subdomain,
        &inner.public.base_authority(),
    )
    .map_err(odoo_error)
}

/// Runs a data-plane step of an attempt until it ends or the attempt's
/// lease is lost, whichever comes first: a taken-over attempt stops working
/// on the tenant's database and files.
pub(crate) async fn fenced<T>(
    lease: &Lease,
    step: impl std::future::Future<Output = Result<T, OdooError>>,
) -> Result<T, HandlerError> {
    tokio::select! {
        result = step => result.map_err(odoo_error),
        () = lease.lost() => Err(crate::lease::taken_over()),
    }
}

/// Moves the tenant from `from` to `to` (allowed by the lifecycle rules);
/// already being in `to` counts as done, so a repeated attempt succeeds.
/// With a lease, the change commits only while the attempt holds it.
async fn set_state(
    pool: &PgPool,
    lease: Option<&Lease>,
    tenant_id: Uuid,
    from: TenantState,
    to: TenantState,
) -> Result<(), HandlerError> {
    transition(from, to).map_err(|err| HandlerError::permanent(err.to_string()))?;
    let mut tx = pool.begin().await?;
    if let Some(lease) = lease {
        lease.guard(&mut tx).await?;
    }
    let current: Option<String> = sqlx::query_scalar(
        "UPDATE tenants SET state = $3, updated_at = now(),
                suspended_at = CASE WHEN $3 = 'suspended' THEN now() WHEN $3 = 'active' THEN NULL ELSE suspended_at END,
                deleted_at = CASE WHEN $3 = 'deleted' THEN now() ELSE deleted_at END
         WHERE id = $1 AND state = $2
         RETURNING state",
    )
    .bind(tenant_id)
    .bind(from.as_str())
    .bind(to.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    if current.is_some() {
        return Ok(());
    }
    let now: Option<String> = sqlx::query_scalar("SELECT state FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_optional(pool)
        .await?;
    match now.as_deref() {
        Some(state) if state == to.as_str() => Ok(()),
        Some(state) => Err(HandlerError::permanent(format!(
            "the tenant is {state}, not {from}"
        ))),
        None => Err(HandlerError::permanent("the tenant no longer exists")),
    }
}

/// Backs the tenant up; the backup row and the operation's success commit
/// together, so a backup is recorded exactly once even when the attempt's
/// lease is taken over at the end.
async fn backup(
    inner: &Inner,
    placement: &TenantPlacement,
    operation: &Operation,
    lease: &Lease,
) -> Result<(), HandlerError> {
    let kind = operation.args["kind"].as_str().unwrap_or("manual");
    let info = dump_to_store(inner, placement, lease, &new_backup_key(placement)).await?;
    let mut tx = inner.pool.begin().await?;
    let id = record_backup(&mut tx, placement, kind, &info, None).await?;
    lease.complete(&mut tx).await?;
    tx.commit().await?;
    crate::replica::copy_logged(inner, id, &info.key).await;
    if saas_core::backups::MANUAL_KINDS.contains(&kind) {
        prune_manual_backups(inner, placement).await?;
    }
    Ok(())
}

fn new_backup_key(placement: &TenantPlacement) -> String {
    format!(
        "{}/{}",
        placement.tenant_id,
        saas_odoo::backup_key(&placement.db_name)
    )
}

/// Takes a backup of kind `kind` under `key` as a step of another operation
/// (before a restore or a delete), kept `keep_days` when given; recorded only
/// while the attempt holds its lease.
async fn backup_step(
    inner: &Inner,
    placement: &TenantPlacement,
    lease: &Lease,
    kind: &str,
    key: &str,
    keep_days: Option<i32>,
) -> Result<Uuid, HandlerError> {
    let info = dump_to_store(inner, placement, lease, key).await?;
    let mut tx = inner.pool.begin().await?;
    lease.guard(&mut tx).await?;
    let id = record_backup(&mut tx, placement, kind, &info, keep_days).await?;
    tx.commit().await?;
    crate::replica::copy_logged(inner, id, &info.key).await;
    Ok(id)
}

/// The tenant's Odoo-compatible zip streamed into the store under `key`,
/// stopped when the attempt's lease is lost.
async fn dump_to_store(
    inner: &Inner,
    placement: &TenantPlacement,
    lease: &Lease,
    key: &str,
) -> Result<saas_odoo::BackupInfo, HandlerError> {
    let server = placement.server()?;
    fenced(
        lease,
        saas_odoo::backup_tenant(&server, &placement.db_name, &inner.store, key),
    )
    .await
}

async fn record_backup(
    conn: &mut sqlx::PgConnection,
    placement: &TenantPlacement,
    kind: &str,
    info: &saas_odoo::BackupInfo,
    keep_days: Option<i32>,
) -> Result<Uuid, HandlerError> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO backups (id, tenant_id, object_key, size_bytes, sha256, kind, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(days => $7))",
    )
    .bind(id)
    .bind(placement.tenant_id)
    .bind(&info.key)
    .bind(i64::try_from(info.size_bytes).unwrap_or(i64::MAX))
    .bind(&info.sha256)
    .bind(kind)
    .bind(keep_days)
    .execute(conn)
    .await?;
    tracing::info!(size = info.size_bytes, kind, "backup stored");
    Ok(id)
}

/// How long the copy taken before a restore is kept.
const PRE_RESTORE_KEEP_DAYS: i32 = 7;

/// Backs the tenant up as it is before a restore replaces it, once per
/// restore operation (the key names the operation, so a retried attempt
/// finds its copy), kept for [`PRE_RESTORE_KEEP_DAYS`]: "I restored the
/// wrong file" stays recoverable.
async fn pre_restore_backup(
    inner: &Inner,
    placement: &TenantPlacement,
    operation: &Operation,
    lease: &Lease,
) -> Result<(), HandlerError> {
    let key = format!(
        "{}/{}/pre-restore-{}.zip",
        placement.tenant_id, placement.db_name, operation.id
    );
    let taken: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM backups WHERE object_key = $1)")
            .bind(&key)
            .fetch_one(&inner.pool)
            .await?;
    if taken {
        return Ok(());
    }
    backup_step(
        inner,
        placement,
        lease,
        "pre_restore",
        &key,
        Some(PRE_RESTORE_KEEP_DAYS),
    )
    .await
    .map_err(|err| {
        err.telling_customer("the safety backup before the restore failed; nothing was changed")
    })?;
    Ok(())
}

async fn restore(
    inner: &Inner,
    placement: &TenantPlacement,
    operation: &Operation,
    lease: &Lease,
) -> Result<(), HandlerError> {
    pre_restore_backup(inner, placement, operation, lease).await?;
    let server = placement.server()?;
    let backup_id = operation.args["backup_id"]
        .as_str()
        .and_then(|id| id.parse::<Uuid>().ok())
        .ok_or_else(|| HandlerError::permanent("argument backup_id is missing or not a UUID"))?;
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT object_key, sha256 FROM backups WHERE id = $1 AND tenant_id = $2")
            .bind(backup_id)
            .bind(placement.tenant_id)
            .fetch_optional(&inner.pool)
            .await?;
    let (key, sha256) =
        row.ok_or_else(|| HandlerError::permanent("the backup does not exist for this tenant"))?;
    let base_url = tenant_base_url(inner, placement)?;
    let mut options = saas_odoo::RestoreOptions::new(placement.tenant_id, base_url)
        .with_plan_storage_mb(u64::try_from(placement.max_storage_mb).unwrap_or(0));
    let cap = inner.settings.restore_max_bytes;
    if cap < options.max_bytes {
        options.max_bytes = cap;
        options.limit_label = format!("the platform's restore limit ({} MB)", cap >> 20);
    }
    // Not cut short when the lease is lost: the tenant lock keeps any other
    // attempt off the tenant until this one ends, and a swap is better
    // finished than abandoned (the engine drops a lost attempt soon anyway).
    crate::replica::restore_from_copies(
        inner, &server, placement, backup_id, &key, &sha256, &options,
    )
    .await?;
    // The restored database is a new one: it gets the tenant's access again
    // (closed to PUBLIC; closed to Odoo too while the tenant is suspended).
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM tenants WHERE id = $1")
        .bind(placement.tenant_id)
        .fetch_optional(&inner.pool)
        .await?;
    let access = if state.as_deref() == Some(TenantState::Suspended.as_str()) {
        saas_odoo::suspend_tenant(&server, &placement.db_name).await
    } else {
        saas_odoo::resume_tenant(&server, &placement.db_name).await
    };
    access.map_err(odoo_error)?;
    // An upload counts against the plan's manual backups once it is used.
    prune_manual_backups(inner, placement).await
}

async fn suspend_or_resume(
    inner: &Inner,
    placement: &TenantPlacement,
    operation: &Operation,
    lease: &Lease,
    suspend: bool,
) -> Result<(), HandlerError> {
    let (from, to) = if suspend {
        (TenantState::Active, TenantState::Suspended)
    } else {
        (TenantState::Suspended, TenantState::Active)
    };
    // Enforced in PostgreSQL, where Odoo connects: the routing map alone does not
    // stop XML-RPC naming the database through another tenant's hostname, nor the
    // tenant's crons. Suspension closes the database before the state says so;
    // resume opens it before the state says so.
    let server = placement.server()?;
    let access = if suspend {
        saas_odoo::suspend_tenant(&server, &placement.db_name).await
    } else {
        saas_odoo::resume_tenant(&server, &placement.db_name).await
    };
    access.map_err(odoo_error)?;
    set_state(&inner.pool, Some(lease), placement.tenant_id, from, to).await?;
    let reason = suspend.then(|| {
        operation.args["reason"]
            .as_str()
            .unwrap_or("suspended by an operator")
            .to_owned()
    });
    sqlx::query("UPDATE tenants SET suspend_reason = $2 WHERE id = $1")
        .bind(placement.tenant_id)
        .bind(reason)
        .execute(&inner.pool)
        .await?;
    servers::write_routing_map(inner).await
}

async fn change_plan(
    inner: &Inner,
    placement: &TenantPlacement,
    operation: &Operation,
    lease: &Lease,
) -> Result<(), HandlerError> {
    let plan_id = operation.args["plan_id"]
        .as_str()
        .and_then(|id| id.parse::<Uuid>().ok())
        .ok_or_else(|| HandlerError::permanent("argument plan_id is missing or not a UUID"))?;
    let plan: Option<(i32, i32, i32, i32, i32, i32, bool)> = sqlx::query_as(
        "SELECT max_users, max_storage_mb, max_backups, max_instances, max_domains, trial_days, active
         FROM plans WHERE id = $1",
    )
    .bind(plan_id)
    .fetch_optional(&inner.pool)
    .await?;
    let (max_users, max_storage_mb, max_backups, max_instances, max_domains, trial_days, active) =
        plan.ok_or_else(|| HandlerError::permanent("the new plan does not exist"))?;
    if !active {
        return Err(HandlerError::permanent("the new plan is not available"));
    }
    let limits = PlanLimits {
        max_users,
        max_storage_mb,
        max_backups,
        max_instances,
        max_domains,
        trial_days,
    };
    let usage: (i32, i64, i64) = sqlx::query_as(
        "SELECT usage_users, usage_db_bytes, usage_filestore_bytes FROM tenants WHERE id = $1",
    )
    .bind(placement.tenant_id)
    .fetch_one(&inner.pool)
    .await?;
    let mut exceeded = limits.exceeded_by(&Usage {
        users: usage.0,
        db_bytes: usage.1,
        filestore_bytes: usage.2,
    });
    // The customer's own domains too (the portal checks them first; an
    // operator's change comes straight here).
    exceeded.extend(
        saas_core::domains::beyond_plan(&inner.pool, placement.tenant_id, max_domains).await?,
    );
    if !exceeded.is_empty() {
        let reasons: Vec<String> = exceeded.iter().map(ToString::to_string).collect();
        return Err(HandlerError::permanent(format!(
            "the tenant does not fit the new plan: {}",
            reasons.join("; ")
        )));
    }
    let mut tx = inner.pool.begin().await?;
    lease.guard(&mut tx).await?;
    sqlx::query(
        "UPDATE tenants SET plan_id = $2, updated_at = now(),
                trial_ends_at = CASE WHEN $3 > 0 THEN trial_ends_at ELSE NULL END
         WHERE id = $1",
    )
    .bind(placement.tenant_id)
    .bind(plan_id)
    .bind(trial_days)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn delete(
    inner: &Inner,
    placement: &TenantPlacement,
    operation: &Operation,
    lease: &Lease,
) -> Result<(), HandlerError> {
    let server = placement.server()?;
    let skip_backup = operation.args["skip_backup"].as_bool().unwrap_or(false)
        || operation.args["final_backup"].as_bool() == Some(false);
    // The final backup is kept for the grace period when one is given.
    let keep_days = operation.args["grace_days"]
        .as_i64()
        .filter(|days| *days >= 0)
        .map(|days| i32::try_from(days).unwrap_or(i32::MAX));
    if !skip_backup {
        // A final backup, once: a retried delete does not take another.
        let taken: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM backups WHERE tenant_id = $1 AND kind = 'pre_delete' AND created_at >= $2)",
        )
        .bind(placement.tenant_id)
        .bind(operation.created_at)
        .fetch_one(&inner.pool)
        .await?;
        let exists = saas_odoo::is_provisioned(&server, &placement.db_name, placement.tenant_id)
            .await
            .map_err(odoo_error)?;
        if !taken && exists {
            let key = new_backup_key(placement);
            backup_step(inner, placement, lease, "pre_delete", &key, keep_days).await?;
        }
    }
    lease.check().await?;
    crate::failed_provisions::remove_tenant_data(placement).await?;
    set_state(
        &inner.pool,
        Some(lease),
        placement.tenant_id,
        TenantState::Deleting,
        TenantState::Deleted,
    )
    .await?;
    // Its domains may be claimed again; their files go with the sweep.
    saas_core::domains::remove_all_of_tenant(
        &inner.pool,
        placement.tenant_id,
        &saas_core::ops::Actor::system("worker"),
    )
    .await?;
    crate::domains::sweep(inner).await;
    servers::write_routing_map(inner).await
}

/// Writes the hash of the customer's new Odoo admin password into the
/// tenant's database (as a guest: see `saas_odoo::admin_password`). Hashing
/// runs on a blocking thread; writing the same hash twice is harmless, so a
/// repeated attempt is too.
async fn reset_admin_password(
    inner: &Inner,
    placement: &TenantPlacement,
    operation: &Operation,
    lease: &Lease,
) -> Result<(), HandlerError> {
    let password = crate::secrets::reset_password(inner, operation).await?;
    let hash = tokio::task::spawn_blocking(move || saas_odoo::hash_password_blocking(&password))
        .await
        .map_err(|err| {
            HandlerError::transient(format!("hashing the password: {err}"))
                .telling_customer("an internal error; it is being retried")
        })?;
    let server = placement.server()?;
    fenced(
        lease,
        saas_odoo::set_admin_password(&server, &placement.db_name, placement.tenant_id, &hash),
    )
    .await?;
    tracing::info!("Odoo admin password reset");
    Ok(())
}

async fn collect_usage(inner: &Inner, placement: &TenantPlacement) -> Result<(), HandlerError> {
    let server = placement.server()?;
    let usage = saas_odoo::collect_usage(&server, &placement.db_name)
        .await
        .map_err(odoo_error)?;
    sqlx::query(
        "UPDATE tenants SET usage_db_bytes = $2, usage_filestore_bytes = $3, usage_users = $4,
                usage_collected_at = now()
         WHERE id = $1",
    )
    .bind(placement.tenant_id)
    .bind(usage.db_bytes.max(0))
    .bind(i64::try_from(usage.filestore_bytes).unwrap_or(i64::MAX))
    .bind(i32::try_from(usage.active_users).unwrap_or(i32::MAX))
    .execute(&inner.pool)
    .await?;
    Ok(())
}

async fn health_check(inner: &Inner, placement: &TenantPlacement) -> Result<(), HandlerError> {
    let server = placement.server()?;
    let host = inner.public.authority(&placement.subdomain);
    let options = ProbeOptions {
        timeout: Duration::from_secs(15),
        // A health check asks once; warming is for a new tenant's first visit.
        warm_requests: 0,
        ..ProbeOptions::default()
    };
    saas_odoo::probe_odoo(&server.odoo_url, &host, &options)
        .await
        .map(|_| ())
        .map_err(odoo_error)
}

/// Removes the oldest manual and uploaded backups beyond the plan's
/// `max_backups` (never one a pending restore needs).
async fn prune_manual_backups(
    inner: &Inner,
    placement: &TenantPlacement,
) -> Result<(), HandlerError> {
    let doomed = saas_core::backups::manual_beyond(
        &inner.pool,
        placement.tenant_id,
        i64::from(placement.max_backups),
    )
    .await?;
    for backup in doomed {
        delete_backup(inner, backup.id, &backup.object_key).await?;
        tracing::info!(backup = %backup.id, kind = %backup.kind, "manual backup beyond the plan's limit removed");
    }
    Ok(())
}

/// Deletes a backup's copies in both stores, then its row.
async fn delete_backup(inner: &Inner, id: Uuid, key: &str) -> Result<(), HandlerError> {
    inner.store.delete(key).await.map_err(odoo_error)?;
    if let Some(replica) = &inner.replica {
        replica.delete(key).await.map_err(odoo_error)?;
    }
    sqlx::query("DELETE FROM backups WHERE id = $1")
        .bind(id)
        .execute(&inner.pool)
        .await?;
    Ok(())
}

/// Deletes expired backups, scheduled ones beyond the plan's retention, and
/// manual or uploaded ones beyond the plan's limit.
async fn prune_backups(inner: &Inner, placement: &TenantPlacement) -> Result<(), HandlerError> {
    let doomed: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT b.id, b.object_key FROM backups b
         WHERE b.tenant_id = $1 AND (
             (b.expires_at IS NOT NULL AND b.expires_at < now())
             OR (b.kind = 'scheduled' AND b.id NOT IN (
                 SELECT id FROM backups WHERE tenant_id = $1 AND kind = 'scheduled'
                 ORDER BY created_at DESC LIMIT $2)))",
    )
    .bind(placement.tenant_id)
    .bind(i64::from(placement.max_backups))
    .fetch_all(&inner.pool)
    .await?;
    for (id, key) in doomed {
        delete_backup(inner, id, &key).await?;
        tracing::info!(backup = %id, "pruned backup");
    }
    prune_manual_backups(inner, placement).await
}

/// Final backups of deleted tenants are kept for their grace period only;
/// a deleted tenant has no operations any more, so maintenance removes them.
async fn expire_backups_of_deleted_tenants(inner: &Inner) -> Result<(), HandlerError> {
    let doomed: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT b.id, b.object_key FROM backups b JOIN tenants t ON t.id = b.tenant_id
         WHERE t.state = 'deleted' AND b.expires_at < now() LIMIT 100",
    )
    .fetch_all(&inner.pool)
    .await?;
    for (id, key) in doomed {
        delete_backup(inner, id, &key).await?;
        tracing::info!(backup = %id, "final backup of a deleted tenant expired");
    }
    Ok(())
}
