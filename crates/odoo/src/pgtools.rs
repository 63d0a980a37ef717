//! `pg_dump` and `psql` of the server's major version.

use std::path::PathBuf;
use std::process::Command;

use sqlx::PgConnection;

use crate::error::{OdooError, Result};

/// Major version of the server behind `conn` (15 for 15.20).
pub(crate) async fn server_major(conn: &mut PgConnection) -> Result<u32> {
    let num: String = sqlx::query_scalar("SHOW server_version_num")
        .fetch_one(conn)
        .await?;
    let num: u32 = num
        .trim()
        .parse()
        .map_err(|_| OdooError::invalid("server version", num.clone()))?;
    Ok(num / 10_000)
}

/// `server_version` as Odoo's manifest shows it (`15.20`).
pub(crate) async fn server_version(conn: &mut PgConnection) -> Result<String> {
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(conn)
        .await?;
    Ok(version
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// The client `tool` for a server of major version `major`: Debian's
/// `/usr/lib/postgresql/<major>/bin/<tool>` when installed, else the one on `PATH`;
/// refused with [`OdooError::VersionMismatch`] when its major version differs.
pub(crate) async fn client_for(tool: &'static str, major: u32) -> Result<PathBuf> {
    let versioned = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin/{tool}"));
    let program = if versioned.is_file() {
        versioned
    } else {
        PathBuf::from(tool)
    };
    let probe = program.clone();
    let output =
        tokio::task::spawn_blocking(move || Command::new(&probe).arg("--version").output())
            .await?
            .map_err(|e| OdooError::ToolFailed {
                tool,
                status: "not found".into(),
                stderr: format!("{e}: install the PostgreSQL {major} client tools"),
            })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let client = parse_major(&text).ok_or_else(|| OdooError::ToolFailed {
        tool,
        status: "unexpected --version output".into(),
        stderr: text.trim().to_owned(),
    })?;
    if client != major {
        return Err(OdooError::VersionMismatch {
            tool,
            client,
            server: major,
        });
    }
    Ok(program)
}

/// `pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)` -> 15.
pub(crate) fn parse_major(version_output: &str) -> Option<u32> {
    version_output
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .and_then(|w| w.split('.').next())
        .and_then(|m| m.parse().ok())
}

/// Collects a child's stderr on a thread of its own (so a chatty child never blocks).
pub(crate) fn drain_stderr(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stderr) = stderr {
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        }
        // Keep the end: that is where the reason is.
        if text.len() > 4000 {
            let cut = text.len() - 4000;
            let cut = (cut..text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(cut);
            text = text[cut..].to_owned();
        }
        text.trim().to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_client_versions() {
        assert_eq!(
            parse_major("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_major("psql (PostgreSQL) 17.2"), Some(17));
        assert_eq!(parse_major("pg_dump (PostgreSQL) 9.6.24"), Some(9));
        assert_eq!(parse_major("garbage"), None);
    }

    #[tokio::test]
    async fn refuses_a_client_of_another_major_version() {
        // No client 99 is installed: the one on PATH (another major) is refused.
        match client_for("pg_dump", 99).await {
            Err(OdooError::VersionMismatch {
                tool,
                client,
                server,
            }) => {
                assert_eq!((tool, server), ("pg_dump", 99));
                assert_ne!(client, 99);
            }
            other => panic!("expected VersionMismatch, got {other:?}"),
        }
    }
}
