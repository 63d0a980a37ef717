//! PostgreSQL out of connection slots ("sorry, too many clients already",
//! "too many connections for role ...", "remaining connection slots are
//! reserved ...": all SQLSTATE 53300) is a moment, not a failure: Odoo's
//! workers hand idle connections back within minutes and a neighbour's backup
//! ends. The platform's own sessions on an Odoo cluster (clone, usage reads,
//! guests, pg_dump, psql) wait for a slot with backoff instead of failing the
//! customer's request.

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, PgConnection};

use crate::error::{OdooError, Result};

/// SQLSTATE `too_many_connections`.
pub const TOO_MANY_CONNECTIONS: &str = "53300";

/// How long to wait for a free connection slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotWait {
    /// First pause; each next one doubles, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Give up (returning the last "too many clients" error) once this much
    /// time has passed since the first attempt.
    pub budget: Duration,
}

impl Default for SlotWait {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            budget: Duration::from_secs(120),
        }
    }
}

impl SlotWait {
    /// The pause after `attempt` failed attempts (1-based), with up to 25 %
    /// random jitter so that waiting sessions do not come back in step.
    fn delay(&self, attempt: u32) -> Duration {
        let doubled = self
            .first_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let base = doubled.min(self.max_delay);
        let jitter = rand::random_range(0.0..0.25);
        base.mul_f64(1.0 + jitter)
    }
}

/// Whether `error` says the cluster had no connection slot left: SQLSTATE
/// 53300 from a session, or pg_dump/psql's words for it on stderr.
pub fn is_too_many_clients(error: &OdooError) -> bool {
    match error {
        OdooError::Database(sqlx::Error::Database(e)) => {
            e.code().as_deref() == Some(TOO_MANY_CONNECTIONS)
        }
        OdooError::GuestQueryFailed {
            source: sqlx::Error::Database(e),
            ..
        } => e.code().as_deref() == Some(TOO_MANY_CONNECTIONS),
        OdooError::ToolFailed { stderr, .. } => stderr_says_too_many_clients(stderr),
        // psql could not connect: no line of the dump ran.
        OdooError::DumpFailed {
            line: None,
            sqlstate,
            stderr,
            ..
        } => {
            sqlstate.as_deref() == Some(TOO_MANY_CONNECTIONS)
                || stderr_says_too_many_clients(stderr)
        }
        _ => false,
    }
}

/// libpq's messages for SQLSTATE 53300 (the server's FATAL text, which
/// pg_dump and psql print as they got it).
pub fn stderr_says_too_many_clients(stderr: &str) -> bool {
    [
        "too many clients already",
        "too many connections for role",
        "too many connections for database",
        "remaining connection slots are reserved",
    ]
    .iter()
    .any(|words| stderr.contains(words))
}

/// Runs `attempt` again, with backoff, for as long as it fails only because
/// the cluster had no connection slot; any other outcome is returned at once.
/// `what` names the step for the log. The attempt must be safe to repeat
/// after such a failure.
pub async fn retry_too_many_clients<T, F, Fut>(
    what: &str,
    wait: SlotWait,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let started = Instant::now();
    let mut failures = 0u32;
    loop {
        match attempt().await {
            Err(error) if is_too_many_clients(&error) => {
                failures += 1;
                let pause = wait.delay(failures);
                if started.elapsed() + pause > wait.budget {
                    tracing::warn!(
                        step = what,
                        attempts = failures,
                        waited_ms = started.elapsed().as_millis() as u64,
                        "PostgreSQL had no connection slot; giving up"
                    );
                    return Err(error);
                }
                tracing::info!(
                    step = what,
                    attempt = failures,
                    pause_ms = pause.as_millis() as u64,
                    "PostgreSQL has no connection slot free; waiting"
                );
                tokio::time::sleep(pause).await;
            }
            outcome => return outcome,
        }
    }
}

/// Opens a session, waiting for a connection slot when the cluster is full.
pub(crate) async fn connect(
    what: &str,
    wait: SlotWait,
    options: &PgConnectOptions,
) -> Result<PgConnection> {
    retry_too_many_clients(what, wait, || async { Ok(options.connect().await?) }).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_libpq_words_for_53300_and_nothing_else() {
        for stderr in [
            "pg_dump: error: connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  sorry, too many clients already",
            "psql: error: connection to server on socket \"/run/x\" failed: FATAL:  too many connections for role \"g\"",
            "FATAL:  remaining connection slots are reserved for non-replication superuser connections",
            "FATAL:  too many connections for database \"t\"",
        ] {
            assert!(stderr_says_too_many_clients(stderr), "{stderr}");
            let tool = OdooError::ToolFailed {
                tool: "pg_dump",
                status: "exit status: 1".into(),
                stderr: stderr.into(),
            };
            assert!(is_too_many_clients(&tool));
        }
        for stderr in [
            "",
            "pg_dump: error: connection to server failed: FATAL:  password authentication failed",
            "pg_dump: error: query failed: ERROR:  permission denied for table t",
            "FATAL:  database \"x\" does not exist",
        ] {
            assert!(!stderr_says_too_many_clients(stderr), "{stderr}");
        }
        assert!(!is_too_many_clients(&OdooError::DatabaseMissing(
            "t".into()
        )));
        assert!(!is_too_many_clients(&OdooError::Database(
            sqlx::Error::PoolTimedOut
        )));
    }

    #[test]
    fn backs_off_doubling_up_to_the_cap() {
        let wait = SlotWait {
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            budget: Duration::from_secs(10),
        };
        for (attempt, base_ms) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (5, 1600),
            (6, 2000),
            (40, 2000),
        ] {
            let delay = wait.delay(attempt).as_millis() as u64;
            assert!(
                (base_ms..=base_ms * 5 / 4).contains(&delay),
                "attempt {attempt}: {delay} ms"
            );
        }
    }

    #[tokio::test]
    async fn other_errors_are_not_retried_and_53300_words_are_until_the_budget() {
        let wait = SlotWait {
            first_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            budget: Duration::from_millis(200),
        };
        let mut calls = 0;
        let outcome: Result<()> = retry_too_many_clients("test", wait, || {
            calls += 1;
            async { Err(OdooError::DatabaseMissing("t".into())) }
        })
        .await;
        assert!(matches!(outcome, Err(OdooError::DatabaseMissing(_))));
        assert_eq!(calls, 1);

        let started = Instant::now();
        let mut calls = 0;
        let outcome: Result<()> = retry_too_many_clients("test", wait, || {
            calls += 1;
            async {
                Err(OdooError::ToolFailed {
                    tool: "psql",
                    status: "exit status: 2".into(),
                    stderr: "FATAL:  sorry, too many clients already".into(),
                })
            }
        })
        .await;
        assert!(outcome.as_ref().is_err_and(is_too_many_clients));
        assert!(calls > 3, "{calls} attempts");
        assert!(started.elapsed() <= Duration::from_millis(400));

        let mut calls = 0;
        let outcome = retry_too_many_clients("test", wait, || {
            calls += 1;
            let failing = calls < 3;
            async move {
                if failing {
                    Err(OdooError::ToolFailed {
                        tool: "pg_dump",
                        status: "exit status: 1".into(),
                        stderr: "FATAL:  sorry, too many clients already".into(),
                    })
                } else {
                    Ok(calls)
                }
            }
        })
        .await;
        assert_eq!(outcome.ok(), Some(3));
    }
}
