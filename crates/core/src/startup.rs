//! Start-up failures phrased so an operator knows what to do next.

use std::io;

use crate::config::{Config, ConfigError};

/// Why a service could not start. `Display` is the one line printed on exit.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error(
        "PostgreSQL at {endpoint} refused the password for user {user:?} (DATABASE_URL). \
         If the database volume was initialised earlier with another POSTGRES_PASSWORD, it keeps \
         that old password: set DATABASE_URL/POSTGRES_PASSWORD back to it, or reset the volume \
         (`podman-compose down -v`, which deletes the platform data) and start again"
    )]
    DatabasePassword { endpoint: String, user: String },
    #[error(
        "PostgreSQL at {endpoint} has no database {database:?} (DATABASE_URL): create it \
         (`createdb {database}`) or fix the name in DATABASE_URL"
    )]
    DatabaseMissing { endpoint: String, database: String },
    #[error("cannot reach PostgreSQL at {endpoint} (DATABASE_URL): {reason}")]
    DatabaseUnreachable { endpoint: String, reason: String },
    #[error("PostgreSQL at {endpoint} (DATABASE_URL) failed: {reason}")]
    Database { endpoint: String, reason: String },
    #[error("cannot reach Redis at {endpoint} (REDIS_URL): {reason}")]
    RedisUnreachable { endpoint: String, reason: String },
    #[error(
        "port {port} on {addr} is already in use: stop whatever listens there or set {var} to a free port"
    )]
    PortInUse {
        var: &'static str,
        addr: String,
        port: u16,
    },
    #[error("cannot listen on {addr}:{port} ({var}): {reason}")]
    Bind {
        var: &'static str,
        addr: String,
        port: u16,
        reason: String,
    },
    #[error(
        "the platform schema in {database:?} is not current after {waited_secs} s \
         (applied: {applied}, expected: {expected}); is `admin` running its migrations? \
         Raise SCHEMA_WAIT_SECS to wait longer"
    )]
    SchemaNotReady {
        database: String,
        waited_secs: u64,
        applied: String,
        expected: String,
    },
    #[error("migrating the platform schema failed: {0}")]
    Migrate(String),
    #[error("internal start-up failure: {0}")]
    Internal(String),
    /// A running service found that it cannot continue (the worker's queue
    /// consumer stayed down too long): it exits non-zero so that its
    /// supervisor restarts it, rather than live on doing nothing.
    #[error("stopped: {0}")]
    Stopped(String),
}

impl StartupError {
    /// Process exit status: 2 for configuration errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) => 2,
            _ => 1,
        }
    }

    /// Translates a PostgreSQL connection error into what the operator must do.
    pub fn from_database(config: &Config, err: &sqlx::Error) -> Self {
        let endpoint = config.database_endpoint();
        if let Some(db_err) = err.as_database_error() {
            match db_err.code().as_deref() {
                Some("28P01") | Some("28000") => {
                    return StartupError::DatabasePassword {
                        endpoint,
                        user: config.database_user(),
                    };
                }
                Some("3D000") => {
                    return StartupError::DatabaseMissing {
                        endpoint,
                        database: config.database_name(),
                    };
                }
                _ => {}
            }
        }
        match err {
            sqlx::Error::Io(io_err) => StartupError::DatabaseUnreachable {
                endpoint,
                reason: crate::error_chain::chain(io_err),
            },
            sqlx::Error::PoolTimedOut => StartupError::DatabaseUnreachable {
                endpoint,
                reason: "timed out while connecting".to_owned(),
            },
            other => StartupError::Database {
                endpoint,
                reason: crate::error_chain::chain(other),
            },
        }
    }

    /// Whether retrying the connection may help (the server may still be starting).
    pub fn is_transient(&self) -> bool {
        matches!(self, StartupError::DatabaseUnreachable { .. })
    }

    pub fn from_bind(config: &Config, err: &io::Error) -> Self {
        Self::from_bind_port(config, config.service.port_var(), config.port, err)
    }

    /// A failure to bind `port`, which `var` sets (`METRICS_PORT`, say).
    pub fn from_bind_port(config: &Config, var: &'static str, port: u16, err: &io::Error) -> Self {
        let addr = config.bind_addr.to_string();
        if err.kind() == io::ErrorKind::AddrInUse {
            StartupError::PortInUse { var, addr, port }
        } else {
            StartupError::Bind {
                var,
                addr,
                port,
                reason: crate::error_chain::chain(err),
            }
        }
    }
}
