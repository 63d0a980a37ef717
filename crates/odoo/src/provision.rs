//! Provisioning a tenant: clone the template database, copy its filestore, give the
//! copy its own identity and credentials, then probe Odoo. Every step checks what is
//! already done, so running it again after a crash at any point ends in the same
//! state: one database, configured exactly once.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use sqlx::{Acquire as _, PgConnection};
use url::Url;

use crate::error::{OdooError, Result};
use crate::filestore::copy_template_filestore;
use crate::ident::{check_db_name, quoted};
use crate::password::hash_password_blocking;
use crate::probe::{ProbeOptions, probe_odoo};
use crate::server::OdooServer;

/// `ir_config_parameter` key written last, in the configuration transaction: a
/// database without it is not configured.
pub const PROVISIONED_MARKER: &str = "saas.provisioned";

/// The admin user's password, in clear (hashed here on a blocking thread while the
/// template is cloned) or already in Odoo's `$pbkdf2-sha512$...` form.
#[derive(Clone)]
pub enum AdminPassword {
    Plain(SecretString),
    Hashed(String),
}

impl std::fmt::Debug for AdminPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdminPassword::Plain(_) => "Plain([REDACTED])",
            AdminPassword::Hashed(_) => "Hashed([REDACTED])",
        })
    }
}

/// What a new tenant database should look like.
#[derive(Clone, Debug)]
pub struct ProvisionSpec {
    /// The tenant database (also the filestore directory name).
    pub db_name: String,
    /// The template database to clone, `tpl_<name>`.
    pub template: String,
    /// `web.base.url`, e.g. `https://acme.example.com`; its host is the Host header
    /// of the probe.
    pub base_url: Url,
    /// Name of company 1 (and its partner).
    pub company_name: String,
    /// Login of the admin user (id 2): the customer's email, also the partner email.
    pub admin_login: String,
    pub admin_password: AdminPassword,
}

/// `<scheme>://<subdomain>.<base_domain>` as a URL (scheme `https` in production).
pub fn tenant_base_url(scheme: &str, subdomain: &str, base_domain: &str) -> Result<Url> {
    Url::parse(&format!("{scheme}://{subdomain}.{base_domain}"))
        .map_err(|e| OdooError::invalid("base URL", e.to_string()))
}

/// The steps of [`provision`], in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProvisionStep {
    CloneDatabase,
    CopyFilestore,
    Configure,
    Probe,
}

impl ProvisionStep {
    pub const ALL: [ProvisionStep; 4] = [
        ProvisionStep::CloneDatabase,
        ProvisionStep::CopyFilestore,
        ProvisionStep::Configure,
        ProvisionStep::Probe,
    ];
}

/// Where a test makes provisioning stop as if the process died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// The step finished, nothing after it ran.
    After(ProvisionStep),
    /// The step was half done: a filestore copy left in its staging directory, a
    /// configuration transaction never committed, a clone never started.
    During(ProvisionStep),
}

/// Knobs of [`provision`].
#[derive(Clone, Debug)]
pub struct ProvisionOptions {
    /// How long to keep retrying while the template has active sessions.
    pub busy_template_timeout: Duration,
    /// Probe Odoo at the end; `None` skips the probe.
    pub probe: Option<ProbeOptions>,
    /// Crash injection for tests; `None` in production.
    pub crash_at: Option<CrashPoint>,
}

impl Default for ProvisionOptions {
    fn default() -> Self {
        Self {
            busy_template_timeout: Duration::from_secs(30),
            probe: Some(ProbeOptions::default()),
            crash_at: None,
        }
    }
}

/// What a [`provision`] run did (steps already done earlier are `false`).
#[derive(Clone, Debug, Default)]
pub struct ProvisionReport {
    pub created_database: bool,
    pub copied_filestore: bool,
    pub configured: bool,
    pub clone_time: Duration,
    pub probe_time: Option<Duration>,
    pub total_time: Duration,
}

/// Provisions (or finishes provisioning) a tenant database on `server`.
#[tracing::instrument(skip_all)]
pub async fn provision(
    server: &OdooServer,
    spec: &ProvisionSpec,
    options: &ProvisionOptions,
) -> Result<ProvisionReport> {
    check_spec(spec)?;
    let started = Instant::now();
    let crash = |point: CrashPoint| options.crash_at == Some(point);
    let mut report = ProvisionReport::default();

    // Hashing costs about a second of CPU: it runs while the template is cloned.
    let hashing = match &spec.admin_password {
        AdminPassword::Plain(password) => {
            let password = password.clone();
            Some(tokio::task::spawn_blocking(move || {
                hash_password_blocking(&password)
            }))
        }
        AdminPassword::Hashed(_) => None,
    };

    let clone_started = Instant::now();
    report.created_database = clone_database(
        server,
        &spec.template,
        &spec.db_name,
        options.busy_template_timeout,
        crash(CrashPoint::During(ProvisionStep::CloneDatabase)),
    )
    .await?;
    report.clone_time = clone_started.elapsed();
    stop_if(
        crash(CrashPoint::After(ProvisionStep::CloneDatabase)),
        ProvisionStep::CloneDatabase,
    )?;

    let crash_copy = crash(CrashPoint::During(ProvisionStep::CopyFilestore));
    report.copied_filestore =
        copy_template_filestore(server, &spec.template, &spec.db_name, crash_copy).await?;
    if crash_copy {
        return Err(OdooError::Interrupted(CrashPoint::During(
            ProvisionStep::CopyFilestore,
        )));
    }
    stop_if(
        crash(CrashPoint::After(ProvisionStep::CopyFilestore)),
        ProvisionStep::CopyFilestore,
    )?;

    let hash = match (&spec.admin_password, hashing) {
        (_, Some(task)) => task.await?,
        (AdminPassword::Hashed(hash), None) => hash.clone(),
        (AdminPassword::Plain(_), None) => {
            return Err(OdooError::invalid(
                "admin password",
                "hashing did not start",
            ));
        }
    };
    let crash_configure = crash(CrashPoint::During(ProvisionStep::Configure));
    report.configured = configure(server, spec, &hash, crash_configure).await?;
    stop_if(
        crash(CrashPoint::After(ProvisionStep::Configure)),
        ProvisionStep::Configure,
    )?;
    if crash(CrashPoint::During(ProvisionStep::Probe)) {
        return Err(OdooError::Interrupted(CrashPoint::During(
            ProvisionStep::Probe,
        )));
    }

    if let Some(probe) = &options.probe {
        let host = probe_host(&spec.base_url)?;
        report.probe_time = Some(probe_odoo(&server.odoo_url, &host, probe).await?);
    }
    stop_if(
        crash(CrashPoint::After(ProvisionStep::Probe)),
        ProvisionStep::Probe,
    )?;
    report.total_time = started.elapsed();
    tracing::info!(
        created = report.created_database,
        configured = report.configured,
        clone_ms = report.clone_time.as_millis() as u64,
        total_ms = report.total_time.as_millis() as u64,
        "tenant provisioned"
    );
    Ok(report)
}

fn stop_if(stop: bool, step: ProvisionStep) -> Result<()> {
    if stop {
        Err(OdooError::Interrupted(CrashPoint::After(step)))
    } else {
        Ok(())
    }
}

fn check_spec(spec: &ProvisionSpec) -> Result<()> {
    check_db_name(&spec.db_name)?;
    check_db_name(&spec.template)?;
    if !spec.template.starts_with(crate::templates::TEMPLATE_PREFIX) {
        return Err(OdooError::invalid("template", "name must start with tpl_"));
    }
    let login = spec.admin_login.trim();
    if login.is_empty() || login.len() > 254 || login != spec.admin_login {
        return Err(OdooError::invalid(
            "admin login",
            "1-254 characters, no surrounding spaces",
        ));
    }
    if spec.admin_login.chars().any(char::is_control) {
        return Err(OdooError::invalid("admin login", "control characters"));
    }
    let name = spec.company_name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(OdooError::invalid("company name", "1-200 characters"));
    }
    if let AdminPassword::Hashed(hash) = &spec.admin_password
        && !hash.starts_with("$pbkdf2-sha512$")
    {
        return Err(OdooError::invalid(
            "admin password hash",
            "not a pbkdf2-sha512 hash",
        ));
    }
    probe_host(&spec.base_url)?;
    Ok(())
}

/// The Host header a browser sends for `base_url`.
pub(crate) fn probe_host(base_url: &Url) -> Result<String> {
    let host = base_url
        .host_str()
        .ok_or_else(|| OdooError::invalid("base URL", "no host"))?;
    Ok(match base_url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// Owner of database `db`, or `None` when it does not exist.
pub(crate) async fn database_owner(admin: &mut PgConnection, db: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
    )
    .bind(db)
    .fetch_optional(admin)
    .await?)
}

/// Terminates the idle sessions on `db` (never our own); returns how many.
pub(crate) async fn terminate_idle(admin: &mut PgConnection, db: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid() AND state = 'idle'",
    )
    .bind(db)
    .fetch_one(admin)
    .await?)
}

/// Other sessions still connected to `db`.
async fn other_sessions(admin: &mut PgConnection, db: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(db)
    .fetch_one(admin)
    .await?)
}

fn ensure_owner(db: &str, owner: &str, role: &str) -> Result<()> {
    if owner == role {
        Ok(())
    } else {
        Err(OdooError::ForeignDatabase {
            db: db.to_owned(),
            reason: format!("is owned by {owner:?}, not by the Odoo role {role:?}"),
        })
    }
}

/// `CREATE DATABASE db OWNER role TEMPLATE tpl`, retried while the template is busy.
/// Returns `false` when the database already existed (an earlier run made it).
async fn clone_database(
    server: &OdooServer,
    template: &str,
    db: &str,
    busy_timeout: Duration,
    crash_before: bool,
) -> Result<bool> {
    let role = &server.odoo_db_role;
    let mut admin = server.connect_admin().await?;
    if let Some(owner) = database_owner(&mut admin, db).await? {
        ensure_owner(db, &owner, role)?;
        return Ok(false);
    }
    if database_owner(&mut admin, template).await?.is_none() {
        return Err(OdooError::TemplateMissing(template.to_owned()));
    }
    let sql = format!(
        "CREATE DATABASE {} OWNER {} TEMPLATE {}",
        quoted(db),
        quoted(role),
        quoted(template)
    );
    let started = Instant::now();
    let mut pause = Duration::from_millis(25);
    loop {
        let closed = terminate_idle(&mut admin, template).await?;
        if closed > 0 {
            tracing::debug!(closed, "closed idle sessions on the template");
        }
        if crash_before {
            return Err(OdooError::Interrupted(CrashPoint::During(
                ProvisionStep::CloneDatabase,
            )));
        }
        // PostgreSQL itself waits up to 5 s for other sessions inside CREATE DATABASE;
        // asking first keeps the wait bounded by `busy_timeout`.
        let result = if closed == 0 && other_sessions(&mut admin, template).await? > 0 {
            Err(None)
        } else {
            sqlx::query(&sql).execute(&mut admin).await.map_err(Some)
        };
        match result {
            Ok(_) => return Ok(true),
            Err(Some(sqlx::Error::Database(e))) if e.code().as_deref() == Some("42P04") => {
                // A concurrent run created it a moment ago.
                let owner = database_owner(&mut admin, db).await?.unwrap_or_default();
                ensure_owner(db, &owner, role)?;
                return Ok(false);
            }
            Err(None) => {
                if started.elapsed() + pause > busy_timeout {
                    return Err(OdooError::TemplateBusy {
                        template: template.to_owned(),
                        waited: started.elapsed(),
                    });
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(Some(sqlx::Error::Database(e))) if e.code().as_deref() == Some("55006") => {
                if started.elapsed() + pause > busy_timeout {
                    return Err(OdooError::TemplateBusy {
                        template: template.to_owned(),
                        waited: started.elapsed(),
                    });
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(1));
            }
            Err(Some(e)) => return Err(e.into()),
        }
    }
}

/// Whether database `db` exists and carries the provisioning marker.
pub async fn is_provisioned(server: &OdooServer, db: &str) -> Result<bool> {
    let mut admin = server.connect_admin().await?;
    if database_owner(&mut admin, db).await?.is_none() {
        return Ok(false);
    }
    // A tenant's ir_config_parameter may be whatever a restored dump made it
    // (a view calling the customer's function): a guest reads it.
    crate::guest::read_as_guest(
        server,
        db,
        &["ir_config_parameter"],
        "checking the provisioned marker",
        async |conn| marker(conn).await.map(|m| m.is_some()),
    )
    .await
}

async fn marker(conn: &mut PgConnection) -> Result<Option<String>> {
    let has_table: bool =
        sqlx::query_scalar("SELECT to_regclass('public.ir_config_parameter') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await?;
    if !has_table {
        return Ok(None);
    }
    Ok(
        sqlx::query_scalar("SELECT value FROM ir_config_parameter WHERE key = $1")
            .bind(PROVISIONED_MARKER)
            .fetch_optional(&mut *conn)
            .await?,
    )
}

/// Gives the new database its own identity and credentials, in one transaction that
/// ends with the marker. Returns `false` when it was already configured.
async fn configure(
    server: &OdooServer,
    spec: &ProvisionSpec,
    password_hash: &str,
    crash_before_commit: bool,
) -> Result<bool> {
    let mut conn = server.connect_db(&spec.db_name).await?;
    let mut tx = conn.begin().await?;
    // Two concurrent runs for one tenant: the second waits, then sees the marker.
    sqlx::query("SELECT pg_advisory_xact_lock(4242001)")
        .execute(&mut *tx)
        .await?;
    if marker(&mut tx).await?.is_some() {
        return Ok(false);
    }
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string();
    let params = [
        ("database.uuid", uuid::Uuid::new_v4().to_string()),
        ("database.secret", uuid::Uuid::new_v4().to_string()),
        ("database.create_date", now.clone()),
        (
            "web.base.url",
            spec.base_url.as_str().trim_end_matches('/').to_owned(),
        ),
    ];
    for (key, value) in params {
        set_param(&mut tx, key, &value).await?;
    }

    let company_partner: Option<i32> = sqlx::query_scalar(
        "UPDATE res_company SET name = $1, write_date = now() AT TIME ZONE 'UTC' \
         WHERE id = 1 RETURNING partner_id",
    )
    .bind(&spec.company_name)
    .fetch_optional(&mut *tx)
    .await?;
    let company_partner = company_partner.ok_or_else(|| {
        OdooError::VerificationFailed("the template has no company with id 1".into())
    })?;
    sqlx::query(
        "UPDATE res_partner SET name = $1, complete_name = $1, \
         write_date = now() AT TIME ZONE 'UTC' WHERE id = $2",
    )
    .bind(&spec.company_name)
    .bind(company_partner)
    .execute(&mut *tx)
    .await?;

    let admin_partner: Option<i32> = sqlx::query_scalar(
        "UPDATE res_users SET login = $1, password = $2, write_date = now() AT TIME ZONE 'UTC' \
         WHERE id = 2 RETURNING partner_id",
    )
    .bind(&spec.admin_login)
    .bind(password_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let admin_partner = admin_partner.ok_or_else(|| {
        OdooError::VerificationFailed("the template has no admin user with id 2".into())
    })?;
    sqlx::query(
        "UPDATE res_partner SET email = $1, write_date = now() AT TIME ZONE 'UTC' WHERE id = $2",
    )
    .bind(&spec.admin_login)
    .bind(admin_partner)
    .execute(&mut *tx)
    .await?;

    set_param(&mut tx, PROVISIONED_MARKER, &now).await?;
    if crash_before_commit {
        drop(tx);
        return Err(OdooError::Interrupted(CrashPoint::During(
            ProvisionStep::Configure,
        )));
    }
    tx.commit().await?;
    Ok(true)
}

pub(crate) async fn set_param(conn: &mut PgConnection, key: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO ir_config_parameter (key, value, create_uid, write_uid, create_date, write_date) \
         VALUES ($1, $2, 1, 1, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC') \
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, write_uid = 1, \
         write_date = EXCLUDED.write_date",
    )
    .bind(key)
    .bind(value)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_debug_output() {
        let plain = format!("{:?}", AdminPassword::Plain(SecretString::from("hunter2")));
        let hashed = format!("{:?}", AdminPassword::Hashed("$pbkdf2-sha512$1$a$b".into()));
        assert!(!plain.contains("hunter2") && !hashed.contains("pbkdf2"));
    }

    #[test]
    fn base_url_and_host() -> anyhow::Result<()> {
        let url = tenant_base_url("https", "acme", "example.com")?;
        assert_eq!(url.as_str(), "https://acme.example.com/");
        assert_eq!(probe_host(&url)?, "acme.example.com");
        let local = tenant_base_url("http", "acme", "localtest.me:8081")?;
        assert_eq!(probe_host(&local)?, "acme.localtest.me:8081");
        Ok(())
    }
}
