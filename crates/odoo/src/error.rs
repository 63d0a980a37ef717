//! The one error type of the data plane.

use std::path::PathBuf;
use std::time::Duration;

use crate::provision::CrashPoint;

/// Everything that can go wrong in the data plane. Variants that a caller can act on
/// (busy template, timeout, bad archive, version mismatch) carry a reason meant for
/// an operator; internals keep their source for the log.
#[derive(Debug, thiserror::Error)]
pub enum OdooError {
    /// An input (database name, role, URL, login...) is not acceptable.
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },

    /// The template database does not exist on the server.
    #[error("template database {0:?} does not exist on this server")]
    TemplateMissing(String),

    /// Other sessions kept using the template for longer than allowed.
    #[error(
        "template database {template:?} stayed busy for {waited:?} (other sessions are \
         connected to it and were not idle); close them or retry later"
    )]
    TemplateBusy { template: String, waited: Duration },

    /// A database with the tenant's name exists but is not one this crate made for it.
    #[error("database {db:?} exists but {reason}")]
    ForeignDatabase { db: String, reason: String },

    /// The tenant database does not exist.
    #[error("database {0:?} does not exist")]
    DatabaseMissing(String),

    /// Odoo did not answer 200 in time.
    #[error("Odoo at {url} did not answer 200 for host {host:?} within {timeout:?} (last: {last})")]
    ProbeTimeout {
        url: String,
        host: String,
        timeout: Duration,
        last: String,
    },

    /// Crash injection (tests): provisioning stopped on purpose.
    #[error("provisioning stopped at {0:?} (crash injection)")]
    Interrupted(CrashPoint),

    /// pg_dump/psql and the server have different major versions.
    #[error(
        "{tool} major version {client} does not match the server's major version {server}; \
         install the PostgreSQL {server} client tools"
    )]
    VersionMismatch {
        tool: &'static str,
        client: u32,
        server: u32,
    },

    /// An external program (pg_dump, psql) failed.
    #[error("{tool} failed ({status}): {stderr}")]
    ToolFailed {
        tool: &'static str,
        status: String,
        stderr: String,
    },

    /// The backup archive is not a usable Odoo backup.
    #[error("invalid backup archive: {0}")]
    InvalidArchive(String),

    /// A restored database does not look like an Odoo database.
    #[error("restored database failed verification: {0}")]
    VerificationFailed(String),

    #[error("database error")]
    Database(#[from] sqlx::Error),

    #[error("filesystem error at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("object storage error")]
    Storage(#[from] object_store::Error),

    #[error("zip error")]
    Zip(#[from] zip::result::ZipError),

    #[error("background task failed")]
    Task(#[from] tokio::task::JoinError),

    /// Sessions kept coming back to a database that was closed to them.
    #[error("{sessions} session(s) on database {db:?} survived termination; retry")]
    SessionsRemain { db: String, sessions: i64 },
}

impl OdooError {
    /// What a customer may read about this error: short, built only from the
    /// platform's own words, never from a tool's output or another
    /// database's data. Operators read the full `Display` chain.
    pub fn customer_message(&self) -> String {
        match self {
            OdooError::Invalid { what, .. } => format!("invalid {what}"),
            OdooError::TemplateMissing(_) => "the plan's template is not available".into(),
            OdooError::TemplateBusy { .. } => "the plan's template is busy; retrying".into(),
            OdooError::ForeignDatabase { .. } => {
                "the instance's database name is taken on the server; our operators have been told"
                    .into()
            }
            OdooError::DatabaseMissing(_) => "the instance's database does not exist".into(),
            OdooError::ProbeTimeout { .. } => "Odoo did not answer in time".into(),
            OdooError::Interrupted(_) => "interrupted".into(),
            OdooError::VersionMismatch { .. } | OdooError::ToolFailed { .. } => {
                "a database tool failed on the server".into()
            }
            // Our words about the customer's own archive.
            OdooError::InvalidArchive(_) | OdooError::VerificationFailed(_) => self.to_string(),
            OdooError::Database(_) => "a temporary database problem".into(),
            OdooError::Io { .. } => "a storage problem on the server".into(),
            OdooError::Storage(_) => "a backup storage problem".into(),
            OdooError::Zip(_) => "the backup archive is unreadable".into(),
            OdooError::Task(_) => "an internal error".into(),
            OdooError::SessionsRemain { .. } => {
                "the instance's database is still in use; retrying".into()
            }
        }
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = OdooError> = std::result::Result<T, E>;
