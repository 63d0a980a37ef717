//! Operation kinds, states and rows.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} {other:?}", stringify!($name))),
                }
            }
        }
    };
}

string_enum! {
    /// What an operation does to its tenant.
    OperationKind {
        Provision => "provision",
        Backup => "backup",
        Restore => "restore",
        Suspend => "suspend",
        Resume => "resume",
        ChangePlan => "change_plan",
        Delete => "delete",
        CollectUsage => "collect_usage",
        HealthCheck => "health_check",
        PruneBackups => "prune_backups",
        ResetAdminPassword => "reset_admin_password",
        SyncDomains => "sync_domains",
    }
}

string_enum! {
    /// Where an operation is in its life.
    OperationState {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl OperationKind {
    /// How many attempts an operation of this kind gets before it fails for good.
    pub fn max_attempts(self) -> i32 {
        match self {
            OperationKind::Provision | OperationKind::Restore | OperationKind::Delete => 5,
            OperationKind::Backup
            | OperationKind::ChangePlan
            | OperationKind::ResetAdminPassword => 4,
            OperationKind::Suspend | OperationKind::Resume => 8,
            // DNS changes take minutes to hours to spread: the attempts,
            // backed off up to five minutes apart, cover about half an hour;
            // the schedule checks waiting domains again after that.
            OperationKind::SyncDomains => 10,
            OperationKind::CollectUsage
            | OperationKind::HealthCheck
            | OperationKind::PruneBackups => 3,
        }
    }
}

impl OperationState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OperationState::Succeeded | OperationState::Failed | OperationState::Cancelled
        )
    }
}

/// One row of `operations`.
#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: OperationKind,
    /// Serialised without its secret keys (see [`SECRET_ARG_KEYS`]).
    #[serde(serialize_with = "serialize_public_args")]
    pub args: serde_json::Value,
    pub state: OperationState,
    pub attempts: i32,
    pub max_attempts: i32,
    /// The full reason of the last failed attempt, for operators.
    pub last_error: Option<String>,
    /// What the customer may read about it (short, never a tool's output).
    pub customer_error: Option<String>,
    pub requested_by: String,
    pub worker: Option<String>,
    pub run_after: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for Operation {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        let decode = |column: &str, err: String| sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: err.into(),
        };
        let kind: String = row.try_get("kind")?;
        let state: String = row.try_get("state")?;
        Ok(Self {
            id: row.try_get("id")?,
            tenant_id: row.try_get("tenant_id")?,
            kind: kind.parse().map_err(|e| decode("kind", e))?,
            args: row.try_get("args")?,
            state: state.parse().map_err(|e| decode("state", e))?,
            attempts: row.try_get("attempts")?,
            max_attempts: row.try_get("max_attempts")?,
            last_error: row.try_get("last_error")?,
            customer_error: row.try_get("customer_error")?,
            requested_by: row.try_get("requested_by")?,
            worker: row.try_get("worker")?,
            run_after: row.try_get("run_after")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        })
    }
}

/// Argument keys that hold secrets (an Odoo password hash): never shown in
/// an API, a page or the audit log.
pub const SECRET_ARG_KEYS: &[&str] = &["admin_password_hash"];

/// `args` without its secret keys.
pub fn public_args(args: &serde_json::Value) -> serde_json::Value {
    match args {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .filter(|(key, _)| !SECRET_ARG_KEYS.contains(&key.as_str()))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn serialize_public_args<S: serde::Serializer>(
    args: &serde_json::Value,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    public_args(args).serialize(serializer)
}

impl Operation {
    /// What the customer reads about the last failed attempt: the worker's
    /// customer text; an older row that has only the operators' reason gets
    /// a plain sentence instead of it.
    pub fn customer_error_text(&self) -> Option<String> {
        match (&self.customer_error, &self.last_error) {
            (Some(text), _) => Some(text.clone()),
            (None, Some(_)) => Some("the operation failed; our operators can see why".to_owned()),
            (None, None) => None,
        }
    }

    /// The arguments as they may be shown.
    pub fn public_args(&self) -> serde_json::Value {
        public_args(&self.args)
    }
}

/// Columns selected for an [`Operation`].
pub const COLUMNS: &str = "id, tenant_id, kind, args, state, attempts, max_attempts, last_error, \
     customer_error, requested_by, worker, run_after, created_at, started_at, finished_at";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in OperationKind::ALL {
            assert_eq!(kind.as_str().parse::<OperationKind>(), Ok(*kind));
            assert!(kind.max_attempts() > 0);
        }
        for state in OperationState::ALL {
            assert_eq!(state.as_str().parse::<OperationState>(), Ok(*state));
        }
        assert!("reboot".parse::<OperationKind>().is_err());
    }

    #[test]
    fn final_states() {
        assert!(!OperationState::Queued.is_final());
        assert!(!OperationState::Running.is_final());
        assert!(OperationState::Failed.is_final());
    }
}
