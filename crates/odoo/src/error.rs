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

    /// The backup would write more than its limit allows (decompressed dump,
    /// filestore, or the database psql is filling).
    #[error("backup is larger than {limit}")]
    RestoreTooLarge {
        /// What the limit is, for a customer: "your plan's storage (1024 MB)".
        limit: String,
        max_bytes: u64,
    },

    /// The backup was made by a newer PostgreSQL or another Odoo version.
    #[error("{0}")]
    IncompatibleBackup(String),

    /// `dump.sql` holds a psql meta-command (a line starting with a backslash
    /// outside COPY data): refused before psql sees it.
    #[error(
        "dump.sql line {line}: psql command {command:?} is not allowed (restores run psql in \\restrict mode)"
    )]
    UnsafeDump { line: u64, command: String },

    /// psql stopped on an error in the dump. `line` is the dump's own line number;
    /// `stderr` holds psql's own words (it may quote data from anywhere the dump
    /// could read, so it is for operators only).
    #[error("psql stopped at dump.sql line {}: {stderr}", line.map_or("?".to_owned(), |l| l.to_string()))]
    DumpFailed {
        line: Option<u64>,
        sqlstate: Option<String>,
        /// psql refused something itself (a meta-command in restricted mode).
        client_error: bool,
        stderr: String,
    },

    /// psql ran longer than the restore's wall-clock limit and was stopped.
    #[error("restoring dump.sql took longer than {0:?}; stopped")]
    RestoreTimeout(Duration),

    /// A query the platform ran as a guest inside a customer's database failed
    /// (a trigger, rule, view or policy of a restored dump may be why).
    #[error("a guest's query failed while {step}: {source}")]
    GuestQueryFailed {
        step: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// The installed client lacks a safety feature the data plane relies on.
    #[error(
        "{tool} {version} is too old: restores need psql's \\restrict (PostgreSQL 13.22, 14.19, \
         15.14, 16.10, 17.6, 18 or later); install a current PostgreSQL client"
    )]
    ClientTooOld { tool: &'static str, version: String },

    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    #[error("filesystem error at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A stored backup cannot be used: missing, corrupt (its SHA-256 is not
    /// the recorded one), or encrypted with another key.
    #[error("backup {key:?} in the {store} store is unusable: {reason}")]
    BackupUnusable {
        key: String,
        store: &'static str,
        reason: String,
    },

    #[error("object storage error: {0}")]
    Storage(#[from] object_store::Error),

    #[error("zip error: {0}")]
    Zip(#[from] zip::result::ZipError),

    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),

    /// Sessions kept coming back to a database that was closed to them.
    #[error("{sessions} session(s) on database {db:?} survived termination; retry")]
    SessionsRemain { db: String, sessions: i64 },
}

impl OdooError {
    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            reason: reason.into(),
        }
    }

    /// The error wrapped as [`OdooError::GuestQueryFailed`] when the database
    /// answered (the dump's objects may be why); connection trouble stays a
    /// [`OdooError::Database`].
    pub(crate) fn guest(step: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| match source {
            sqlx::Error::Database(_) => Self::GuestQueryFailed { step, source },
            other => Self::Database(other),
        }
    }

    /// This error as [`OdooError::GuestQueryFailed`] when it is the database's
    /// answer to a guest's statement.
    pub(crate) fn in_guest(self, step: &'static str) -> Self {
        match self {
            Self::Database(source @ sqlx::Error::Database(_)) => {
                Self::GuestQueryFailed { step, source }
            }
            other => other,
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
