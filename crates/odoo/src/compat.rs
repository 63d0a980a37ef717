//! Whether a backup fits this server, decided before anything is created:
//! the Odoo series of its `manifest.json` must be the server's (Odoo does
//! not load another series' database), and neither the manifest's
//! `pg_version` nor `dump.sql`'s header (`-- Dumped from database version
//! X`, `-- Dumped by pg_dump version X`) may be newer than the server's
//! PostgreSQL (a newer pg_dump writes SQL an older server does not know).

use crate::error::{OdooError, Result};

/// pg_dump's version comments at the top of `dump.sql`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DumpHeader {
    pub from_database: Option<String>,
    pub by_pg_dump: Option<String>,
}

/// Reads the header comments from the first bytes of `dump.sql`.
pub(crate) fn read_header(head: &[u8]) -> DumpHeader {
    let text = String::from_utf8_lossy(head);
    let find = |prefix: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .map(|version| version.trim().to_owned())
    };
    DumpHeader {
        from_database: find("-- Dumped from database version "),
        by_pg_dump: find("-- Dumped by pg_dump version "),
    }
}

/// The Odoo series of a version: `18.0` for `18.0`, `18.0+e` or the module
/// version `18.0.1.3`; `saas~17.4` for `saas~17.4.1.0`.
pub(crate) fn odoo_series(version: &str) -> Option<String> {
    let version = version.trim();
    let version = version.split('+').next().unwrap_or(version);
    let mut parts = version.split('.');
    let major = parts.next()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let major_ok = major.ends_with(|c: char| c.is_ascii_digit())
        && major
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '~');
    (major_ok && !minor.is_empty()).then(|| format!("{major}.{minor}"))
}

/// Refuses a backup from another Odoo series (when both are known) or from a
/// newer PostgreSQL than `server_pg_major`.
pub(crate) fn check_compatible(
    manifest: Option<&serde_json::Value>,
    header: &DumpHeader,
    server_pg_major: u32,
    server_odoo: Option<&str>,
) -> Result<()> {
    let field = |name: &str| {
        manifest
            .and_then(|m| m.get(name))
            .and_then(|v| v.as_str())
            .filter(|v| !v.trim().is_empty())
    };
    let backup_odoo = field("major_version")
        .or_else(|| field("version"))
        .and_then(odoo_series);
    if let (Some(backup), Some(server)) = (backup_odoo, server_odoo.and_then(odoo_series))
        && backup != server
    {
        return Err(OdooError::IncompatibleBackup(format!(
            "backup is from Odoo {}, this server runs Odoo {}",
            shown(&backup),
            shown(&server)
        )));
    }
    let newer = |version: &str| pg_major(version).is_some_and(|major| major > server_pg_major);
    if let Some(version) = field("pg_version").filter(|v| newer(v)) {
        return Err(OdooError::IncompatibleBackup(format!(
            "backup is from PostgreSQL {}, this server runs PostgreSQL {server_pg_major}",
            shown(version)
        )));
    }
    if let Some(version) = header.by_pg_dump.as_deref().filter(|v| newer(v)) {
        return Err(OdooError::IncompatibleBackup(format!(
            "backup was made by pg_dump {}, this server runs PostgreSQL {server_pg_major}",
            shown(version)
        )));
    }
    if let Some(version) = header.from_database.as_deref().filter(|v| newer(v)) {
        return Err(OdooError::IncompatibleBackup(format!(
            "backup is from PostgreSQL {}, this server runs PostgreSQL {server_pg_major}",
            shown(version)
        )));
    }
    Ok(())
}

/// `15` for `15.20 (Debian 15.20-0+deb12u1)`, `9` for `9.6.24`, `18` for `18beta1`.
fn pg_major(version: &str) -> Option<u32> {
    let digits: String = version
        .trim()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A version from the customer's archive as it may appear in a message:
/// version characters only, short.
fn shown(version: &str) -> String {
    version
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '~' | '-' | '+'))
        .take(24)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PG_DUMP_HEADER: &[u8] = b"--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\n\
        -- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)\n\
        -- Dumped by pg_dump version 17.2 (Debian 17.2-1)\n\nSET x = 1;\n";

    #[test]
    fn reads_pg_dump_header() {
        assert_eq!(
            read_header(PG_DUMP_HEADER),
            DumpHeader {
                from_database: Some("15.20 (Debian 15.20-0+deb12u1)".into()),
                by_pg_dump: Some("17.2 (Debian 17.2-1)".into()),
            }
        );
        assert_eq!(read_header(b"SELECT 1;"), DumpHeader::default());
    }

    #[test]
    fn series_of_versions() {
        assert_eq!(odoo_series("18.0").as_deref(), Some("18.0"));
        assert_eq!(odoo_series("18.0+e").as_deref(), Some("18.0"));
        assert_eq!(odoo_series("18.0.1.3").as_deref(), Some("18.0"));
        assert_eq!(odoo_series("saas~17.4.1.0").as_deref(), Some("saas~17.4"));
        assert_eq!(odoo_series("18"), None);
    }

    #[test]
    fn refuses_other_series_and_newer_postgres() {
        let none = DumpHeader::default();
        let odoo17 = json!({"version": "17.0", "major_version": "17.0", "pg_version": "15.2"});
        assert_eq!(
            check_compatible(Some(&odoo17), &none, 15, Some("18.0.1.3")).map_err(|e| e.to_string()),
            Err("backup is from Odoo 17.0, this server runs Odoo 18.0".into())
        );
        assert!(check_compatible(Some(&odoo17), &none, 15, None).is_ok());
        let odoo18 = json!({"version": "18.0+e", "pg_version": "16.4"});
        assert_eq!(
            check_compatible(Some(&odoo18), &none, 15, Some("18.0")).map_err(|e| e.to_string()),
            Err("backup is from PostgreSQL 16.4, this server runs PostgreSQL 15".into())
        );
        assert!(check_compatible(Some(&odoo18), &none, 16, Some("18.0")).is_ok());
        assert_eq!(
            check_compatible(None, &read_header(PG_DUMP_HEADER), 15, Some("18.0"))
                .map_err(|e| e.to_string()),
            Err("backup was made by pg_dump 17.2, this server runs PostgreSQL 15".into())
        );
        assert!(check_compatible(None, &read_header(PG_DUMP_HEADER), 17, None).is_ok());
        let older = json!({"version": "18.0", "pg_version": "9.6.24"});
        assert!(check_compatible(Some(&older), &none, 15, Some("18.0")).is_ok());
        let odd = json!({"version": "18.0; DROP <script>", "pg_version": 15});
        assert!(check_compatible(Some(&odd), &none, 15, Some("18.0")).is_ok());
    }
}
