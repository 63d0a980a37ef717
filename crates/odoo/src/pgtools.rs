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
    Ok(probe_client(tool, major).await?.0)
}

/// `psql` for a server of major version `major` that knows `\restrict` (the
/// restricted mode a restore's dump runs in); an older one is refused with
/// [`OdooError::ClientTooOld`].
pub(crate) async fn restricted_psql(major: u32) -> Result<PathBuf> {
    let (program, version) = probe_client("psql", major).await?;
    if supports_restrict(&version) {
        Ok(program)
    } else {
        Err(OdooError::ClientTooOld {
            tool: "psql",
            version: version.trim().to_owned(),
        })
    }
}

/// Whether `psql --version` output names a release with `\restrict`: added in
/// 13.22, 14.19, 15.14, 16.10, 17.6 and 18beta3 (August 2025).
pub(crate) fn supports_restrict(version_output: &str) -> bool {
    let Some(word) = version_output
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
    else {
        return false;
    };
    let digits = |s: &str| -> Option<u32> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    let Some(major) = digits(word) else {
        return false;
    };
    let rest = &word[word
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(word.len())..];
    let minor = rest.strip_prefix('.').and_then(digits);
    let needed = match major {
        0..=12 => return false,
        13 => 22,
        14 => 19,
        15 => 14,
        16 => 10,
        17 => 6,
        // 18beta1 and 18beta2 came out before the fix; 18beta3, rc and 18.x have it.
        18 => {
            return !(rest.starts_with("beta1") || rest.starts_with("beta2"));
        }
        _ => return true,
    };
    minor.is_some_and(|minor| minor >= needed)
}

/// The program for `tool` and its `--version` output, refused when its major
/// version is not `major`.
async fn probe_client(tool: &'static str, major: u32) -> Result<(PathBuf, String)> {
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
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
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
    Ok((program, text))
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

    #[test]
    fn restrict_needs_the_august_2025_releases() {
        for ok in [
            "psql (PostgreSQL) 15.14",
            "psql (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)",
            "psql (PostgreSQL) 16.10",
            "psql (PostgreSQL) 17.6",
            "psql (PostgreSQL) 17.10",
            "psql (PostgreSQL) 14.19",
            "psql (PostgreSQL) 13.22",
            "psql (PostgreSQL) 18beta3",
            "psql (PostgreSQL) 18rc1",
            "psql (PostgreSQL) 18.0",
            "psql (PostgreSQL) 19devel",
        ] {
            assert!(supports_restrict(ok), "{ok}");
        }
        for old in [
            "psql (PostgreSQL) 15.13",
            "psql (PostgreSQL) 15.2",
            "psql (PostgreSQL) 16.9",
            "psql (PostgreSQL) 17.5",
            "psql (PostgreSQL) 17",
            "psql (PostgreSQL) 14.18",
            "psql (PostgreSQL) 13.21",
            "psql (PostgreSQL) 12.22",
            "psql (PostgreSQL) 9.6.24",
            "psql (PostgreSQL) 18beta1",
            "psql (PostgreSQL) 18beta2",
            "garbage",
            "",
        ] {
            assert!(!supports_restrict(old), "{old}");
        }
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
