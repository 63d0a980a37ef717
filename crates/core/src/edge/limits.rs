//! How long and how many: the limits of every HTTP listener, from
//! `HTTP_HEADER_TIMEOUT_SECS`, `HTTP_IDLE_TIMEOUT_SECS`,
//! `HTTP_REQUEST_TIMEOUT_SECS` and `HTTP_MAX_CONNECTIONS`.

use std::time::Duration;

use crate::config::{ConfigError, Env};

/// File descriptors kept for everything but client connections (listener,
/// epoll, stdio, Redis, temporary files of uploads), on top of the database
/// pool's connections.
pub const RESERVED_FILES: u64 = 64;
/// The connection cap when `HTTP_MAX_CONNECTIONS` is unset (or the file
/// limit less the reserve, when that is lower).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 1024;

/// The limits one listener enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// From a request's first byte until its headers are complete.
    pub header_timeout: Duration,
    /// How long a connection may wait, without a byte, for its next
    /// request; also how long a response may stall because the client
    /// stopped reading.
    pub idle_timeout: Duration,
    /// From a request's headers until its answer starts (reading the body
    /// included); routes that take uploads extend it for themselves.
    pub request_timeout: Duration,
    /// Connections served at once; the next waits in the kernel's backlog.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            max_connections: 256,
        }
    }
}

impl HttpLimits {
    /// Reads the limits; the connection cap must leave room below the
    /// process's open-file limit for the database pool and the reserve.
    pub fn from_env(env: &Env, db_max_connections: u32) -> Result<Self, ConfigError> {
        let header_timeout = env.seconds("HTTP_HEADER_TIMEOUT_SECS", 10, 1..=300)?;
        let idle_timeout = env.seconds("HTTP_IDLE_TIMEOUT_SECS", 60, 1..=3600)?;
        let request_timeout = env.seconds("HTTP_REQUEST_TIMEOUT_SECS", 30, 1..=3600)?;
        let open_files = open_file_limit();
        let kept = RESERVED_FILES + u64::from(db_max_connections);
        let ceiling = open_files.saturating_sub(kept).max(1);
        let expected = format!(
            "a whole number from 1 to {ceiling} (the open-file limit, {open_files}, less {kept} \
             kept for the database pool and files; raise `ulimit -n` for more)"
        );
        let max_connections = env.parse_or(
            "HTTP_MAX_CONNECTIONS",
            DEFAULT_MAX_CONNECTIONS.min(ceiling),
            &expected,
            |v| v.parse::<u64>().ok().filter(|n| (1..=ceiling).contains(n)),
        )?;
        Ok(Self {
            header_timeout,
            idle_timeout,
            request_timeout,
            max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
        })
    }
}

/// The process's soft limit on open files (`ulimit -n`), from
/// `/proc/self/limits`; 1024, the usual default, when it cannot be read.
pub fn open_file_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| soft_open_files(&text))
        .unwrap_or(1024)
}

fn soft_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        number => number.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_soft_limit_of_open_files() {
        let text = "Limit                     Soft Limit           Hard Limit           Units\n\
                    Max cpu time              unlimited            unlimited            seconds\n\
                    Max open files            1024                 524288               files\n";
        assert_eq!(soft_open_files(text), Some(1024));
        assert_eq!(
            soft_open_files("Max open files  unlimited unlimited files"),
            Some(u64::MAX)
        );
        assert_eq!(soft_open_files("nothing here"), None);
        assert!(open_file_limit() >= 16);
    }

    #[test]
    fn defaults_and_bounds() -> Result<(), ConfigError> {
        let limits = HttpLimits::from_env(&Env::default(), 10)?;
        assert_eq!(limits.header_timeout, Duration::from_secs(10));
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(limits.request_timeout, Duration::from_secs(30));
        let ceiling = open_file_limit().saturating_sub(RESERVED_FILES + 10).max(1);
        assert_eq!(
            limits.max_connections as u64,
            DEFAULT_MAX_CONNECTIONS.min(ceiling)
        );
        let too_many = (ceiling + 1).to_string();
        let env = Env::from_pairs([("HTTP_MAX_CONNECTIONS", too_many.as_str())]);
        let Err(err) = HttpLimits::from_env(&env, 10) else {
            panic!("accepted more connections than the file limit allows");
        };
        assert_eq!(err.var, "HTTP_MAX_CONNECTIONS");
        assert!(err.to_string().contains("open-file limit"), "{err}");
        let env = Env::from_pairs([("HTTP_HEADER_TIMEOUT_SECS", "0")]);
        assert_eq!(
            HttpLimits::from_env(&env, 10).map_err(|e| e.var),
            Err("HTTP_HEADER_TIMEOUT_SECS")
        );
        Ok(())
    }
}
