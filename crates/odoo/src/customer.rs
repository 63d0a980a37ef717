//! What a customer may read of an error. A dump can make PostgreSQL say
//! anything (a `DO` block raising an exception built from `pg_database` or
//! `pg_roles`), and psql's words can carry other databases' names, so the
//! messages here are built only from what cannot hold foreign data: fixed
//! texts, SQLSTATE codes, line numbers, and the customer's own limits.

use crate::error::OdooError;

impl OdooError {
    /// A short message a customer may see: never raw psql or PostgreSQL
    /// output, never data from outside their own database. `Display` keeps
    /// the full details for operators.
    pub fn customer_message(&self) -> String {
        match self {
            OdooError::RestoreTooLarge { .. } | OdooError::IncompatibleBackup(_) => {
                self.to_string()
            }
            OdooError::UnsafeDump { line, .. } => format!(
                "dump.sql line {line}: psql commands (lines starting with a backslash) are not allowed"
            ),
            OdooError::DumpFailed {
                line,
                sqlstate,
                client_error,
                ..
            } => {
                let reason = match (sqlstate, client_error) {
                    (Some(code), _) => sqlstate_reason(code),
                    (None, true) => {
                        "psql refused a command (backslash commands are not allowed)".to_owned()
                    }
                    (None, false) => "psql stopped".to_owned(),
                };
                match line {
                    Some(line) => format!("dump.sql line {line}: {reason}"),
                    None => format!("dump.sql could not be restored: {reason}"),
                }
            }
            OdooError::RestoreTimeout(limit) => format!(
                "restoring the backup took longer than {} minutes and was stopped",
                limit.as_secs().div_ceil(60)
            ),
            OdooError::GuestQueryFailed { step, source } => {
                let reason = match source {
                    sqlx::Error::Database(e) => e
                        .code()
                        .map_or_else(|| "SQL error".to_owned(), |code| sqlstate_reason(&code)),
                    _ => "SQL error".to_owned(),
                };
                format!("the database answered with an error while {step}: {reason}")
            }
            // Fixed texts of this crate, or the names and structure of the
            // customer's own archive.
            OdooError::VerificationFailed(_) | OdooError::InvalidArchive(_) => self.to_string(),
            OdooError::DatabaseMissing(_) => "the database does not exist".to_owned(),
            OdooError::TemplateBusy { .. } => {
                "the server is busy; please try again in a few minutes".to_owned()
            }
            OdooError::ProbeTimeout { .. } => "Odoo did not answer in time".to_owned(),
            OdooError::Invalid { what, .. } => format!("invalid {what}"),
            OdooError::TemplateMissing(_) => "the plan's template is not available".to_owned(),
            OdooError::ForeignDatabase { .. } => {
                "the instance's database name is taken on the server; the operators have been notified"
                    .to_owned()
            }
            OdooError::SessionsRemain { .. } => {
                "the instance's database is still in use; retrying".to_owned()
            }
            _ => "an internal error occurred; the operators have been notified".to_owned(),
        }
    }
}

/// A customer's reading of a SQLSTATE (only codes of five digits or capitals
/// are echoed: nothing else can pass through here).
pub(crate) fn sqlstate_reason(code: &str) -> String {
    let reason = match code {
        "42501" => "permission denied",
        "42601" => "syntax error",
        "P0001" => "an exception raised by the dump",
        "0A000" => "feature not supported",
        "42883" | "42P01" | "42704" | "42703" | "3F000" => "undefined object",
        "42P07" | "42710" | "42P06" | "42723" => "object already exists",
        "57014" => "a statement was cancelled (time limit)",
        "53100" => "the server ran out of disk space",
        "53400" => "a limit of the restore was exceeded",
        _ => match code.get(..2) {
            Some("22") => "invalid data",
            Some("23") => "integrity constraint violation",
            Some("28") => "permission denied",
            Some("53") => "the server ran out of resources",
            Some("54") => "a program limit was exceeded",
            Some("57") => "the server stopped the restore",
            _ => "",
        },
    };
    if !reason.is_empty() {
        return reason.to_owned();
    }
    if code.len() == 5
        && code
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
    {
        format!("SQL error {code}")
    } else {
        "SQL error".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sqlstates_read_as_reasons() {
        assert_eq!(sqlstate_reason("42501"), "permission denied");
        assert_eq!(sqlstate_reason("42601"), "syntax error");
        assert_eq!(sqlstate_reason("P0001"), "an exception raised by the dump");
        assert_eq!(sqlstate_reason("0A000"), "feature not supported");
        for code in ["42883", "42P01", "42704"] {
            assert_eq!(sqlstate_reason(code), "undefined object");
        }
        assert_eq!(sqlstate_reason("23505"), "integrity constraint violation");
        assert_eq!(sqlstate_reason("28000"), "permission denied");
        assert_eq!(sqlstate_reason("XX000"), "SQL error XX000");
        assert_eq!(sqlstate_reason("x'; DROP"), "SQL error");
    }

    #[test]
    fn customer_messages_hold_no_psql_output() {
        let secret = "other_tenant_db,postgres,platform_canary";
        let failed = OdooError::DumpFailed {
            line: Some(42),
            sqlstate: Some("P0001".into()),
            client_error: false,
            stderr: format!("psql:<stdin>:43: ERROR:  P0001: leak: {secret}"),
        };
        assert_eq!(
            failed.customer_message(),
            "dump.sql line 42: an exception raised by the dump"
        );
        assert!(failed.to_string().contains(secret), "operators see it all");
        let refused = OdooError::UnsafeDump {
            line: 7,
            command: "\\c".into(),
        };
        assert!(!refused.customer_message().contains("\\c"));
        let internal = OdooError::Io {
            path: "/var/lib/odoo/filestore/secret".into(),
            source: std::io::Error::other("disk"),
        };
        assert!(!internal.customer_message().contains("/var"));
        let too_large = OdooError::RestoreTooLarge {
            limit: "your plan's storage (1024 MB)".into(),
            max_bytes: 1 << 30,
        };
        assert_eq!(
            too_large.customer_message(),
            "backup is larger than your plan's storage (1024 MB)"
        );
        assert!(
            OdooError::RestoreTimeout(Duration::from_secs(1800))
                .customer_message()
                .contains("30 minutes")
        );
    }
}
