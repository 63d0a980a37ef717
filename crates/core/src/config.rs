//! Configuration from environment variables, validated once at start-up.
//!
//! Every variable the code reads is named in [`KNOWN_VARS`]; a test checks
//! that `.env.example` documents each of them. A missing or malformed value
//! becomes a [`ConfigError`] naming the variable, what it expects and what it
//! got, with secrets redacted.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::edge::{HttpLimits, TrustedProxies};

/// Every environment variable read by admin, portal or worker.
pub const KNOWN_VARS: &[&str] = &[
    "DATABASE_URL",
    "REDIS_URL",
    "BIND_ADDR",
    "ADMIN_PORT",
    "PORTAL_PORT",
    "WORKER_PORT",
    "BASE_DOMAIN",
    "SECRET_KEY",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "APP_ENV",
    "PUBLIC_SCHEME",
    "PUBLIC_PORT",
    "SCHEMA_WAIT_SECS",
    "DB_MAX_CONNECTIONS",
    "REDIS_KEY_PREFIX",
    "WORKER_CONCURRENCY",
    "WORKER_SHUTDOWN_TIMEOUT",
    "WORKER_RETRY_BASE_MS",
    "RECONCILE_INTERVAL_MS",
    "ORPHAN_AFTER_SECS",
    "WORKER_HEARTBEAT_SECS",
    "WORKER_QUEUE_GIVE_UP_SECS",
    "ADMIN_BOOTSTRAP_EMAIL",
    "ADMIN_BOOTSTRAP_PASSWORD",
    "ALERT_WEBHOOK_TOKEN",
    "SMTP_URL",
    "SMTP_FROM",
    "MAX_UPLOAD_MB",
    "ROUTING_MAP_PATH",
    "BACKUP_STORE_URL",
    "BACKUP_REPLICA_URL",
    "BACKUP_ENCRYPTION_KEY",
    "S3_ENDPOINT",
    "S3_REGION",
    "S3_PATH_STYLE",
    "S3_RETRY_TIMEOUT_SECS",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_PROFILE",
    "ODOO_UPSTREAM",
    "ODOO_DB_USER",
    "ODOO_FILESTORE_ROOT",
    "ODOO_SERVER_CAPACITY",
    "ODOO_PROBE_TIMEOUT_SECS",
    "RESTORE_MAX_MB",
    "ODOO_TEMPLATES",
    "ADMIN_SESSION_IDLE_SECS",
    "ADMIN_SESSION_ABSOLUTE_SECS",
    "TRUSTED_PROXIES",
    "HTTP_HEADER_TIMEOUT_SECS",
    "HTTP_IDLE_TIMEOUT_SECS",
    "HTTP_REQUEST_TIMEOUT_SECS",
    "HTTP_MAX_CONNECTIONS",
    "UPLOAD_TIMEOUT_SECS",
    "MAIL_PER_RECIPIENT_PER_HOUR",
    "METRICS_PORT",
    "API_BEARER_FAILURES",
    "DNS_RESOLVERS",
    "PUBLIC_IPS",
    "ACME_DIRECTORY_URL",
    "ACME_CONTACT_EMAIL",
    "ACME_CA_BUNDLE",
    "ACME_CHALLENGE_DIR",
    "CERT_STORE_DIR",
];

/// Which service is starting: decides the port variable and its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Admin,
    Portal,
    Worker,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Admin => "admin",
            Service::Portal => "portal",
            Service::Worker => "worker",
        }
    }

    /// The variable that sets this service's port.
    pub fn port_var(self) -> &'static str {
        match self {
            Service::Admin => "ADMIN_PORT",
            Service::Portal => "PORTAL_PORT",
            Service::Worker => "WORKER_PORT",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Service::Admin => 5000,
            Service::Portal => 5001,
            Service::Worker => 5002,
        }
    }

    /// The internal metrics port's default (`METRICS_PORT`). The worker has
    /// no public port: it serves `/metrics` on its own `WORKER_PORT`.
    pub fn default_metrics_port(self) -> u16 {
        match self {
            Service::Admin => 9500,
            Service::Portal => 9501,
            Service::Worker => 9502,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

/// A value could not be used: names the variable, what it expects and what it got.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub var: &'static str,
    pub expected: String,
    /// What was found, already redacted; `None` when the variable is unset.
    pub got: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.got {
            Some(got) => write!(
                f,
                "config error: {}: expected {}, got {:?}",
                self.var, self.expected, got
            ),
            None => write!(
                f,
                "config error: {}: expected {}, but it is not set",
                self.var, self.expected
            ),
        }
    }
}

/// Validated configuration of one service.
#[derive(Clone)]
pub struct Config {
    pub service: Service,
    pub database_url: SecretString,
    pub redis_url: SecretString,
    pub bind_addr: IpAddr,
    pub port: u16,
    pub base_domain: String,
    pub secret_key: SecretString,
    pub log_format: LogFormat,
    pub log_level: String,
    pub app_env: AppEnv,
    pub public_scheme: String,
    /// The port of the public URLs (nginx's published port); `None` when it
    /// is the scheme's default, which URLs leave out.
    pub public_port: Option<u16>,
    pub schema_wait: Duration,
    pub db_max_connections: u32,
    /// Prefix of every Redis key the platform writes (queues, sessions).
    pub redis_key_prefix: String,
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` name the client.
    pub trusted_proxies: TrustedProxies,
    /// Timeouts and the connection cap of the HTTP listener.
    pub http: HttpLimits,
    /// Emails one address may receive per hour; the excess is dropped.
    pub mail_per_recipient_per_hour: u32,
    /// The internal port `/metrics` is served on (admin and portal), apart
    /// from the public application port.
    pub metrics_port: u16,
    /// Failed bearer tokens one client address may present per 15 minutes
    /// before the API answers it 429 (`API_BEARER_FAILURES`).
    pub api_token_failures: u32,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("service", &self.service)
            .field(
                "database_url",
                &redact_url(self.database_url.expose_secret()),
            )
            .field("redis_url", &redact_url(self.redis_url.expose_secret()))
            .field("bind_addr", &self.bind_addr)
            .field("port", &self.port)
            .field("base_domain", &self.base_domain)
            .field("log_format", &self.log_format)
            .field("app_env", &self.app_env)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("http", &self.http)
            .field("metrics_port", &self.metrics_port)
            .finish_non_exhaustive()
    }
}

/// A snapshot of the variables to read: the process environment (after
/// `.env`), or a map in tests.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The process environment, after loading `.env` from the working
    /// directory when present (variables already set win). `SAAS_NO_DOTENV=1`
    /// skips the file.
    pub fn from_process() -> Self {
        if std::env::var_os("SAAS_NO_DOTENV").is_none() {
            let _ = dotenvy::dotenv();
        }
        Self {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, treating an empty string as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The set variables whose names start with `prefix`, empty ones left out.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.vars
            .iter()
            .filter(move |(name, value)| name.starts_with(prefix) && !value.is_empty())
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    pub fn required(&self, name: &'static str, expected: &str) -> Result<&str, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError {
            var: name,
            expected: expected.to_owned(),
            got: None,
        })
    }

    /// A whole number of seconds within `range`, or `default` when unset.
    pub fn seconds(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.duration(name, default, range, "seconds", Duration::from_secs)
    }

    /// A whole number of milliseconds within `range`, or `default` when unset.
    pub fn millis(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.duration(name, default, range, "milliseconds", Duration::from_millis)
    }

    fn duration(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
        unit: &str,
        make: fn(u64) -> Duration,
    ) -> Result<Duration, ConfigError> {
        let expected = format!(
            "a whole number of {unit} from {} to {}",
            range.start(),
            range.end()
        );
        self.parse_or(name, make(default), &expected, |v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| range.contains(n))
                .map(make)
        })
    }

    /// Parses `name` with `parse`, or returns `default` when unset.
    pub fn parse_or<T>(
        &self,
        name: &'static str,
        default: T,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => parse(raw.trim()).ok_or_else(|| ConfigError {
                var: name,
                expected: expected.to_owned(),
                got: Some(raw.to_owned()),
            }),
        }
    }
}

impl Config {
    /// Reads and validates the configuration of `service` from `env`.
    pub fn from_env(service: Service, env: &Env) -> Result<Self, ConfigError> {
        let app_env = env.parse_or(
            "APP_ENV",
            AppEnv::Development,
            "development or production",
            |v| match v {
                "development" => Some(AppEnv::Development),
                "production" => Some(AppEnv::Production),
                _ => None,
            },
        )?;
        let database_url = parse_database_url(env)?;
        let redis_url = parse_redis_url(env)?;
        let bind_addr = env.parse_or(
            "BIND_ADDR",
            IpAddr::from([0, 0, 0, 0]),
            "an IP address such as 0.0.0.0",
            |v| v.parse().ok(),
        )?;
        let port = env.parse_or(
            service.port_var(),
            service.default_port(),
            "a port number from 1 to 65535",
            |v| v.parse::<u16>().ok().filter(|p| *p > 0),
        )?;
        let base_domain = parse_base_domain(env)?;
        let secret_key = parse_secret_key(env, app_env)?;
        let log_format =
            env.parse_or("LOG_FORMAT", LogFormat::Text, "text or json", |v| match v {
                "text" => Some(LogFormat::Text),
                "json" => Some(LogFormat::Json),
                _ => None,
            })?;
        let log_level = env.parse_or(
            "LOG_LEVEL",
            "info,sqlx=warn".to_owned(),
            "a tracing filter such as info or saas_core=debug,info",
            |v| {
                tracing_subscriber::EnvFilter::try_new(v)
                    .ok()
                    .map(|_| v.to_owned())
            },
        )?;
        let public_scheme =
            env.parse_or("PUBLIC_SCHEME", "https".to_owned(), "http or https", |v| {
                matches!(v, "http" | "https").then(|| v.to_owned())
            })?;
        let public_port = env.parse_or(
            "PUBLIC_PORT",
            None,
            "a port number from 1 to 65535 (the port browsers reach nginx on), or empty for the \
             scheme's default (80 for http, 443 for https)",
            |v| v.parse::<u16>().ok().filter(|p| *p > 0).map(Some),
        )?;
        let public_port =
            public_port.filter(|p| *p != crate::public_url::default_port(&public_scheme));
        let schema_wait = env.seconds("SCHEMA_WAIT_SECS", 60, 0..=3600)?;
        let db_max_connections = env.parse_or(
            "DB_MAX_CONNECTIONS",
            10,
            "a whole number from 1 to 1000",
            |v| v.parse::<u32>().ok().filter(|n| (1..=1000).contains(n)),
        )?;
        let redis_key_prefix = env.parse_or(
            "REDIS_KEY_PREFIX",
            "saas:".to_owned(),
            "up to 64 letters, digits or :_- characters, such as saas:",
            |v| {
                (v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b":_-".contains(&b)))
                .then(|| v.to_owned())
            },
        )?;
        let trusted_proxies = TrustedProxies::from_env(env)?;
        let http = HttpLimits::from_env(env, db_max_connections)?;
        let mail_per_recipient_per_hour = env.parse_or(
            "MAIL_PER_RECIPIENT_PER_HOUR",
            5,
            "a whole number from 1 to 1000",
            |v| v.parse::<u32>().ok().filter(|n| (1..=1000).contains(n)),
        )?;
        let metrics_port = env.parse_or(
            "METRICS_PORT",
            service.default_metrics_port(),
            "a port number from 1 to 65535, other than the service's own port",
            |v| v.parse::<u16>().ok().filter(|p| *p > 0 && *p != port),
        )?;
        let api_token_failures = env.parse_or(
            "API_BEARER_FAILURES",
            20,
            "a whole number from 1 to 1000000",
            |v| {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1_000_000).contains(n))
            },
        )?;
        Ok(Self {
            api_token_failures,
            mail_per_recipient_per_hour,
            metrics_port,
            service,
            redis_key_prefix,
            trusted_proxies,
            http,
            database_url,
            redis_url,
            bind_addr,
            port,
            base_domain,
            secret_key,
            log_format,
            log_level,
            app_env,
            public_scheme,
            public_port,
            schema_wait,
            db_max_connections,
        })
    }

    /// Every public URL the services generate, from `PUBLIC_SCHEME`,
    /// `BASE_DOMAIN` and `PUBLIC_PORT`.
    pub fn public_urls(&self) -> crate::public_url::PublicUrls {
        crate::public_url::PublicUrls::new(&self.public_scheme, &self.base_domain, self.public_port)
    }

    /// The key operation secrets are sealed under, derived from `SECRET_KEY`.
    pub fn sealing_key(&self) -> crate::sealing::SealingKey {
        crate::sealing::SealingKey::derive(&self.secret_key)
    }

    /// `host:port` of the PostgreSQL server, for messages (no credentials).
    pub fn database_endpoint(&self) -> String {
        endpoint(self.database_url.expose_secret(), 5432)
    }

    /// `host:port` of the Redis server, for messages (no credentials).
    pub fn redis_endpoint(&self) -> String {
        endpoint(self.redis_url.expose_secret(), 6379)
    }

    /// The database name in `DATABASE_URL`.
    pub fn database_name(&self) -> String {
        Url::parse(self.database_url.expose_secret())
            .map(|u| u.path().trim_start_matches('/').to_owned())
            .unwrap_or_default()
    }

    /// The user name in `DATABASE_URL`.
    pub fn database_user(&self) -> String {
        Url::parse(self.database_url.expose_secret())
            .map(|u| u.username().to_owned())
            .unwrap_or_default()
    }
}

/// Settings only the worker reads.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Operations one worker process runs at once.
    pub concurrency: usize,
    /// How long SIGTERM waits for running operations before exiting.
    pub shutdown_timeout: Duration,
    /// First retry delay; doubles with every attempt.
    pub retry_base: Duration,
    /// How often the reconciler compares PostgreSQL with Redis.
    pub reconcile_interval: Duration,
    /// How often a worker renews the leases of its running operations and
    /// tells Redis it is alive.
    pub heartbeat_every: Duration,
    /// How long a lease (and a queue consumer's registration in Redis)
    /// outlives its last renewal: an operation not renewed for this long is
    /// taken over by another worker. It is the tolerance for a stalled
    /// worker, so it must cover the longest pause of a loaded host.
    pub orphan_after: Duration,
    /// How long the queue consumer may stay down (Redis unreachable, every
    /// re-registration failing) before the process exits with status 1, so
    /// that its supervisor restarts it.
    pub queue_give_up: Duration,
}

impl WorkerSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let settings = Self {
            concurrency: env.parse_or(
                "WORKER_CONCURRENCY",
                4,
                "a whole number from 1 to 256",
                |v| v.parse::<usize>().ok().filter(|n| (1..=256).contains(n)),
            )?,
            shutdown_timeout: env.seconds("WORKER_SHUTDOWN_TIMEOUT", 30, 1..=3600)?,
            retry_base: env.millis("WORKER_RETRY_BASE_MS", 2000, 1..=600_000)?,
            reconcile_interval: env.millis("RECONCILE_INTERVAL_MS", 2000, 1..=600_000)?,
            heartbeat_every: env.seconds("WORKER_HEARTBEAT_SECS", 5, 1..=300)?,
            orphan_after: env.seconds("ORPHAN_AFTER_SECS", 60, 1..=3600)?,
            queue_give_up: env.seconds("WORKER_QUEUE_GIVE_UP_SECS", 300, 5..=86_400)?,
        };
        // Fewer than three renewals per lease would let one slow renewal
        // (a busy PostgreSQL, a paused host) cost an operation its lease.
        let least = settings.heartbeat_every * 3;
        if settings.orphan_after < least {
            return Err(ConfigError {
                var: "ORPHAN_AFTER_SECS",
                expected: format!(
                    "at least three WORKER_HEARTBEAT_SECS ({} s)",
                    least.as_secs()
                ),
                got: Some(settings.orphan_after.as_secs().to_string()),
            });
        }
        Ok(settings)
    }
}

/// What the worker needs to act on Odoo servers.
#[derive(Debug, Clone)]
pub struct DataPlaneSettings {
    /// The nginx map file the worker writes (temp file + rename).
    pub routing_map_path: std::path::PathBuf,
    /// The backup stores (primary, replica), their S3 settings and the
    /// encryption key.
    pub backup: crate::backup_store::BackupStoreSettings,
    /// How long provisioning waits for Odoo to serve the new tenant;
    /// zero skips the probe.
    pub probe_timeout: Duration,
    /// The most a restore may write (database and filestore together),
    /// whatever the plan allows: a platform-wide cap on one upload's cost.
    pub restore_max_bytes: u64,
    /// The Odoo server of a single-host deployment, registered as server
    /// `default` when `ODOO_UPSTREAM` is set.
    pub default_server: Option<DefaultServer>,
    /// The templates `odoo/build-templates.sh` builds (`ODOO_TEMPLATES`):
    /// each gets a plan once it is found on a server, the first time only.
    pub templates: Vec<TemplateSpec>,
    /// Customers' own domains: DNS, ACME, certificate store, nginx's maps.
    pub domains: crate::domain_settings::DomainSettings,
}

/// One `name:module,module` entry of `ODOO_TEMPLATES`: the database
/// `tpl_<name>` with those modules installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSpec {
    pub name: String,
    pub modules: Vec<String>,
}

const TEMPLATES_SHAPE: &str = "space-separated name:module,module entries such as \
     \"basic:base,web,contacts\" (names and modules of lower-case letters, digits and _, \
     names at most 40 characters), as odoo/build-templates.sh reads them";

/// Parses `ODOO_TEMPLATES` the way `odoo/build-templates.sh` does; `None`
/// when an entry is malformed or a name repeats.
pub fn parse_templates(raw: &str) -> Option<Vec<TemplateSpec>> {
    let word = |w: &str, max: usize| {
        (1..=max).contains(&w.len())
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    let mut specs: Vec<TemplateSpec> = Vec::new();
    for entry in raw.split_whitespace() {
        let (name, modules) = entry.split_once(':')?;
        let modules: Vec<String> = modules.split(',').map(str::to_owned).collect();
        if !word(name, 40)
            || !modules.iter().all(|m| word(m, 64))
            || specs.iter().any(|s| s.name == name)
        {
            return None;
        }
        specs.push(TemplateSpec {
            name: name.to_owned(),
            modules,
        });
    }
    Some(specs)
}

/// The compose stack's own Odoo server: its cluster is the platform's.
#[derive(Debug, Clone)]
pub struct DefaultServer {
    /// `host:port` of Odoo's HTTP port.
    pub upstream: String,
    /// The role Odoo connects as, owner of every tenant database.
    pub odoo_db_role: String,
    /// Odoo's `<data_dir>/filestore`, shared with the worker.
    pub filestore_root: String,
    pub capacity: i32,
}

impl DataPlaneSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let routing_map_path = env.parse_or(
            "ROUTING_MAP_PATH",
            std::path::PathBuf::from("var/routing/tenants.map"),
            "a file path such as /var/lib/odoo-saas/routing/tenants.map",
            |v| Some(std::path::PathBuf::from(v)),
        )?;
        let backup = crate::backup_store::BackupStoreSettings::from_env(env)?;
        // Zero skips the probe.
        let probe_timeout = env.seconds("ODOO_PROBE_TIMEOUT_SECS", 60, 0..=3600)?;
        let restore_max_mb = env.parse_or(
            "RESTORE_MAX_MB",
            20_480u64,
            "a whole number of megabytes from 1 to 10000000",
            |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (1..=10_000_000).contains(n))
            },
        )?;
        let upstream = env.parse_or("ODOO_UPSTREAM", None, "host:port such as odoo:8069", |v| {
            let (host, port) = v.rsplit_once(':')?;
            (!host.is_empty() && port.parse::<u16>().is_ok()).then(|| Some(v.to_owned()))
        })?;
        let default_server = match upstream {
            None => None,
            Some(upstream) => Some(DefaultServer {
                upstream,
                odoo_db_role: env.parse_or(
                    "ODOO_DB_USER",
                    "odoo".to_owned(),
                    "a PostgreSQL role name",
                    |v| {
                        (v.len() <= 63 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                            .then(|| v.to_owned())
                    },
                )?,
                filestore_root: env.parse_or(
                    "ODOO_FILESTORE_ROOT",
                    "/var/lib/odoo/filestore".to_owned(),
                    "an absolute directory path",
                    |v| v.starts_with('/').then(|| v.to_owned()),
                )?,
                capacity: env.parse_or(
                    "ODOO_SERVER_CAPACITY",
                    100,
                    "a whole number of tenants from 0 to 100000",
                    |v| v.parse::<i32>().ok().filter(|n| (0..=100_000).contains(n)),
                )?,
            }),
        };
        let templates = env.parse_or("ODOO_TEMPLATES", Vec::new(), TEMPLATES_SHAPE, |v| {
            // Quotes as .env files and compose keep them.
            parse_templates(v.trim_matches(|c| c == '"' || c == '\''))
        })?;
        let domains = crate::domain_settings::DomainSettings::from_env(env, &routing_map_path)?;
        Ok(Self {
            domains,
            routing_map_path,
            backup,
            probe_timeout,
            restore_max_bytes: restore_max_mb * 1024 * 1024,
            default_server,
            templates,
        })
    }
}

const DATABASE_URL_SHAPE: &str = "postgres://user:password@host:port/database";
const REDIS_URL_SHAPE: &str = "redis://host:port/db";

fn parse_database_url(env: &Env) -> Result<SecretString, ConfigError> {
    let raw = env.required("DATABASE_URL", DATABASE_URL_SHAPE)?;
    let bad = || ConfigError {
        var: "DATABASE_URL",
        expected: DATABASE_URL_SHAPE.to_owned(),
        got: Some(redact_url(raw)),
    };
    let url = Url::parse(raw).map_err(|_| bad())?;
    let scheme_ok = matches!(url.scheme(), "postgres" | "postgresql");
    let has_db = !url.path().trim_start_matches('/').is_empty();
    if !scheme_ok || url.host_str().is_none_or(str::is_empty) || !has_db {
        return Err(bad());
    }
    Ok(SecretString::from(raw.to_owned()))
}

fn parse_redis_url(env: &Env) -> Result<SecretString, ConfigError> {
    let raw = env.required("REDIS_URL", REDIS_URL_SHAPE)?;
    let bad = || ConfigError {
        var: "REDIS_URL",
        expected: REDIS_URL_SHAPE.to_owned(),
        got: Some(redact_url(raw)),
    };
    let url = Url::parse(raw).map_err(|_| bad())?;
    let scheme_ok = matches!(url.scheme(), "redis" | "rediss");
    let db = url.path().trim_start_matches('/');
    let db_ok = db.is_empty() || db.parse::<u32>().is_ok();
    if !scheme_ok || url.host_str().is_none_or(str::is_empty) || !db_ok {
        return Err(bad());
    }
    Ok(SecretString::from(raw.to_owned()))
}

fn parse_base_domain(env: &Env) -> Result<String, ConfigError> {
    let expected = "a domain name such as saas.example.com or localhost";
    env.parse_or("BASE_DOMAIN", "localhost".to_owned(), expected, |v| {
        let v = v.to_ascii_lowercase();
        let ok = v.len() <= 200
            && v.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        ok.then_some(v)
    })
}

/// Values from `.env.example` start with this; production refuses them.
pub const EXAMPLE_SECRET_MARKER: &str = "change-me";

fn parse_secret_key(env: &Env, app_env: AppEnv) -> Result<SecretString, ConfigError> {
    let expected = "a random string of at least 32 characters (e.g. `openssl rand -hex 32`)";
    let raw = env.required("SECRET_KEY", expected)?;
    let described = format!("a value of {} characters", raw.chars().count());
    if raw.chars().count() < 32 {
        return Err(ConfigError {
            var: "SECRET_KEY",
            expected: expected.to_owned(),
            got: Some(described),
        });
    }
    if app_env == AppEnv::Production && raw.contains(EXAMPLE_SECRET_MARKER) {
        return Err(ConfigError {
            var: "SECRET_KEY",
            expected: "a value of your own in production, not the one from .env.example".to_owned(),
            got: Some("the example value".to_owned()),
        });
    }
    Ok(SecretString::from(raw.to_owned()))
}

/// The URL with any password replaced by `***`; unparsable input is shown
/// only up to its first `@`, so a password can never leak.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => match raw.rfind('@') {
            Some(at) => format!("***{}", &raw[at..]),
            None => raw.to_owned(),
        },
    }
}

fn endpoint(raw: &str, default_port: u16) -> String {
    match Url::parse(raw) {
        Ok(url) => format!(
            "{}:{}",
            url.host_str().unwrap_or("?"),
            url.port().unwrap_or(default_port)
        ),
        Err(_) => "?".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            ("DATABASE_URL", "postgres://saas:s3cret@db:5432/platform"),
            ("REDIS_URL", "redis://redis:6379/0"),
            ("SECRET_KEY", "0123456789abcdef0123456789abcdef"),
        ]
    }

    fn with(extra: &[(&'static str, &'static str)]) -> Env {
        let mut pairs = base();
        pairs.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        pairs.extend_from_slice(extra);
        Env::from_pairs(pairs)
    }

    #[test]
    fn defaults_apply() -> Result<(), ConfigError> {
        let config = Config::from_env(Service::Admin, &with(&[]))?;
        assert_eq!(config.port, 5000);
        assert_eq!(config.bind_addr.to_string(), "0.0.0.0");
        assert_eq!(config.database_endpoint(), "db:5432");
        assert_eq!(config.redis_endpoint(), "redis:6379");
        assert_eq!(config.database_name(), "platform");
        assert_eq!(Config::from_env(Service::Worker, &with(&[]))?.port, 5002);
        Ok(())
    }

    #[test]
    fn malformed_redis_url_is_named() {
        let Err(err) = Config::from_env(Service::Admin, &with(&[("REDIS_URL", "}redis:6379")]))
        else {
            panic!("accepted a malformed REDIS_URL");
        };
        assert_eq!(
            err.to_string(),
            r#"config error: REDIS_URL: expected redis://host:port/db, got "}redis:6379""#
        );
    }

    #[test]
    fn bad_port_names_the_variable() {
        let Err(err) = Config::from_env(Service::Portal, &with(&[("PORTAL_PORT", "abc")])) else {
            panic!("accepted PORTAL_PORT=abc");
        };
        assert_eq!(err.var, "PORTAL_PORT");
        assert!(err.to_string().contains("\"abc\""));
    }

    #[test]
    fn database_password_never_printed() {
        let Err(err) = Config::from_env(
            Service::Admin,
            &with(&[("DATABASE_URL", "mysql://saas:s3cret@db/platform")]),
        ) else {
            panic!("accepted a mysql URL");
        };
        let text = err.to_string();
        assert!(text.contains("DATABASE_URL"));
        assert!(!text.contains("s3cret"), "{text}");
        assert!(!format!("{:?}", err).contains("s3cret"));
    }

    #[test]
    fn unparsable_url_hides_everything_before_the_at() {
        assert_eq!(redact_url("not a url:pw@host"), "***@host");
        assert_eq!(
            redact_url("postgres://u:pw@h:1/d"),
            "postgres://u:***@h:1/d"
        );
    }

    #[test]
    fn short_secret_key_is_refused_without_echo() {
        let Err(err) = Config::from_env(Service::Admin, &with(&[("SECRET_KEY", "tiny-secret")]))
        else {
            panic!("accepted a short key");
        };
        assert!(!err.to_string().contains("tiny-secret"));
    }

    #[test]
    fn production_refuses_the_example_secret() {
        let env = with(&[
            ("APP_ENV", "production"),
            ("SECRET_KEY", "change-me-to-a-long-random-string-0123456789"),
        ]);
        let Err(err) = Config::from_env(Service::Admin, &env) else {
            panic!("production accepted the example key");
        };
        assert_eq!(err.var, "SECRET_KEY");
    }

    #[test]
    fn missing_variable_says_it_is_not_set() {
        let env = Env::from_pairs([("REDIS_URL", "redis://r:6379")]);
        let Err(err) = Config::from_env(Service::Admin, &env) else {
            panic!("accepted a missing DATABASE_URL");
        };
        assert_eq!(
            err.to_string(),
            "config error: DATABASE_URL: expected postgres://user:password@host:port/database, but it is not set"
        );
    }

    #[test]
    fn durations_are_bounded_and_name_their_unit() -> Result<(), ConfigError> {
        let env = Env::from_pairs([("WORKER_RETRY_BASE_MS", "0"), ("ORPHAN_AFTER_SECS", "7")]);
        let Err(err) = WorkerSettings::from_env(&env) else {
            panic!("accepted a zero retry base");
        };
        assert_eq!(
            err.to_string(),
            r#"config error: WORKER_RETRY_BASE_MS: expected a whole number of milliseconds from 1 to 600000, got "0""#
        );
        let env = Env::from_pairs([("ORPHAN_AFTER_SECS", "7"), ("WORKER_HEARTBEAT_SECS", "2")]);
        assert_eq!(
            WorkerSettings::from_env(&env)?.orphan_after,
            Duration::from_secs(7)
        );
        let Err(err) = Config::from_env(Service::Admin, &with(&[("SCHEMA_WAIT_SECS", "3601")]))
        else {
            panic!("accepted SCHEMA_WAIT_SECS=3601");
        };
        assert!(
            err.to_string()
                .contains("a whole number of seconds from 0 to 3600")
        );
        Ok(())
    }

    #[test]
    fn stall_tolerance_defaults_survive_a_30_s_pause_and_need_three_beats()
    -> Result<(), ConfigError> {
        let defaults = WorkerSettings::from_env(&Env::default())?;
        assert!(defaults.orphan_after >= Duration::from_secs(30) + defaults.heartbeat_every * 2);
        let env = Env::from_pairs([("WORKER_HEARTBEAT_SECS", "5"), ("ORPHAN_AFTER_SECS", "14")]);
        let Err(err) = WorkerSettings::from_env(&env) else {
            panic!("accepted a lease shorter than three heartbeats");
        };
        assert_eq!(
            err.to_string(),
            r#"config error: ORPHAN_AFTER_SECS: expected at least three WORKER_HEARTBEAT_SECS (15 s), got "14""#
        );
        Ok(())
    }

    #[test]
    fn public_port_is_validated_and_default_ports_omitted() -> Result<(), ConfigError> {
        let config = Config::from_env(
            Service::Portal,
            &with(&[("PUBLIC_SCHEME", "http"), ("PUBLIC_PORT", "8081")]),
        )?;
        assert_eq!(config.public_port, Some(8081));
        assert_eq!(
            config.public_urls().tenant("acme"),
            "http://acme.localhost:8081"
        );
        for (scheme, port) in [("http", "80"), ("https", "443")] {
            let config = Config::from_env(
                Service::Worker,
                &with(&[("PUBLIC_SCHEME", scheme), ("PUBLIC_PORT", port)]),
            )?;
            assert_eq!(config.public_port, None, "{scheme} {port}");
        }
        assert_eq!(
            Config::from_env(Service::Admin, &with(&[("PUBLIC_PORT", "")]))?.public_port,
            None
        );
        for bad in ["0", "65536", "80a", "-1", "http"] {
            let Err(err) = Config::from_env(Service::Admin, &with(&[("PUBLIC_PORT", bad)])) else {
                panic!("accepted PUBLIC_PORT={bad}");
            };
            assert_eq!(err.var, "PUBLIC_PORT");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        Ok(())
    }

    #[test]
    fn odoo_templates_parse_like_build_templates_sh() -> Result<(), ConfigError> {
        let env = Env::from_pairs([(
            "ODOO_TEMPLATES",
            "basic:base,web,contacts  standard:base,web,sale_management\n",
        )]);
        let settings = DataPlaneSettings::from_env(&env)?;
        assert_eq!(
            settings.templates,
            vec![
                TemplateSpec {
                    name: "basic".into(),
                    modules: vec!["base".into(), "web".into(), "contacts".into()]
                },
                TemplateSpec {
                    name: "standard".into(),
                    modules: vec!["base".into(), "web".into(), "sale_management".into()]
                },
            ]
        );
        assert!(
            DataPlaneSettings::from_env(&Env::default())?
                .templates
                .is_empty()
        );
        for bad in [
            "basic",
            "basic:",
            "Basic:base",
            "basic:base,,web",
            "ba-sic:base",
            "basic:base basic:web",
            ":base",
            "basic:base;rm",
        ] {
            let Err(err) = DataPlaneSettings::from_env(&Env::from_pairs([("ODOO_TEMPLATES", bad)]))
            else {
                panic!("accepted ODOO_TEMPLATES={bad:?}");
            };
            assert_eq!(err.var, "ODOO_TEMPLATES", "{bad}");
        }
        Ok(())
    }

    #[test]
    fn debug_output_hides_secrets() -> Result<(), ConfigError> {
        let config = Config::from_env(Service::Admin, &with(&[]))?;
        let text = format!("{config:?}");
        assert!(!text.contains("s3cret") && !text.contains("0123456789abcdef"));
        Ok(())
    }
}
