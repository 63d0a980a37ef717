//! Provisioning a tenant: clone the template database under a side name, mark it as
//! the tenant's and rename it (`clone`), copy its filestore, give the copy its own
//! identity and credentials (`configure`), then probe Odoo. Every step checks what is
//! already done, so running it again after a crash at any point ends in the same
//! state: one database, configured exactly once. A database under the tenant's
//! name that does not carry the tenant's marker is never adopted.

use std::time::{Duration, Instant};

use secrecy::SecretString;
use sqlx::PgConnection;
use url::Url;
use uuid::Uuid;

use crate::clone::{CloneRequest, clone_database};
use crate::configure::configure;
use crate::error::{OdooError, Result};
use crate::filestore::copy_template_filestore;
use crate::ident::check_db_name;
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
    /// The platform's tenant id: its marker on the database, and `database.uuid`.
    pub tenant_id: Uuid,
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
    /// The step was half done: a clone made and marked under its side name but
    /// never renamed, a filestore copy left in its staging directory, a
    /// configuration transaction never committed.
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

    // Hashing costs about a second of CPU: it runs while the template is
    // cloned. A rerun that finds the tenant's database already made (an
    // attempt that failed at the probe) most likely finds it configured too:
    // it hashes only if configuring turns out to need it.
    let resumed = {
        let mut admin = server.connect_admin().await?;
        database_owner(&mut admin, &spec.db_name).await?.is_some()
    };
    let hashing = if resumed {
        None
    } else {
        start_hashing(&spec.admin_password)
    };

    let clone_started = Instant::now();
    report.created_database = clone_database(
        server,
        &CloneRequest {
            template: &spec.template,
            db: &spec.db_name,
            tenant_id: spec.tenant_id,
            busy_timeout: options.busy_template_timeout,
            crash_before_rename: crash(CrashPoint::During(ProvisionStep::CloneDatabase)),
        },
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

    let hashed = match hashing {
        Some(task) => Some(task.await?),
        None => None,
    };
    // A resumed database that still needs configuring (an attempt stopped
    // between the clone and the configuration) hashes now.
    let password_hash = async || match hashed {
        Some(hash) => Ok(hash),
        None => match start_hashing(&spec.admin_password) {
            Some(task) => Ok(task.await?),
            None => match &spec.admin_password {
                AdminPassword::Hashed(hash) => Ok(hash.clone()),
                AdminPassword::Plain(_) => Err(OdooError::invalid(
                    "admin password",
                    "hashing did not start",
                )),
            },
        },
    };
    let crash_configure = crash(CrashPoint::During(ProvisionStep::Configure));
    report.configured = configure(server, spec, password_hash, crash_configure).await?;
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

/// Hashes a clear password on a blocking thread; `None` for a hash.
fn start_hashing(password: &AdminPassword) -> Option<tokio::task::JoinHandle<String>> {
    match password {
        AdminPassword::Plain(password) => {
            let password = password.clone();
            Some(tokio::task::spawn_blocking(move || {
                hash_password_blocking(&password)
            }))
        }
        AdminPassword::Hashed(_) => None,
    }
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
