//! The bytes a restore may write, counted as they are written: the
//! decompressed dump fed to psql, the filestore files, and (polled while
//! anything runs in the new database) the size PostgreSQL reports for it. A
//! zip's own size claims are never trusted, and a tiny dump that generates
//! gigabytes (`INSERT ... generate_series`) is stopped by the poll.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::PgConnection;

use crate::error::{OdooError, Result};

/// How often the new database's size is read while work runs in it.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub(crate) struct Budget {
    max_bytes: u64,
    label: String,
    dump: AtomicU64,
    files: AtomicU64,
}

impl Budget {
    pub(crate) fn new(max_bytes: u64, label: &str) -> Self {
        Self {
            max_bytes,
            label: label.to_owned(),
            dump: AtomicU64::new(0),
            files: AtomicU64::new(0),
        }
    }

    /// `n` more bytes of the dump are about to go to psql.
    pub(crate) fn add_dump(&self, n: usize) -> Result<()> {
        let dump = self.dump.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        self.within(dump.saturating_add(self.files.load(Ordering::Relaxed)))
    }

    /// `n` more filestore bytes are about to be written.
    pub(crate) fn add_files(&self, n: usize) -> Result<()> {
        let files = self.files.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        self.within(files.saturating_add(self.dump.load(Ordering::Relaxed)))
    }

    /// The new database is `db_bytes` large: with the filestore written so far
    /// it must stay within the limit.
    pub(crate) fn check_database(&self, db_bytes: u64) -> Result<()> {
        self.within(db_bytes.saturating_add(self.files.load(Ordering::Relaxed)))
    }

    pub(crate) fn check_archive(&self, archive_bytes: u64) -> Result<()> {
        // Deflate never shrinks data much below this; zip headers add a little.
        self.within(archive_bytes.saturating_sub((self.max_bytes / 64).max(1 << 20)))
    }

    pub(crate) fn too_large(&self) -> OdooError {
        OdooError::RestoreTooLarge {
            limit: self.label.clone(),
            max_bytes: self.max_bytes,
        }
    }

    fn within(&self, total: u64) -> Result<()> {
        if total > self.max_bytes {
            Err(self.too_large())
        } else {
            Ok(())
        }
    }
}

/// Runs `work` while reading the size of database `db` every 200 ms; when it
/// passes the budget, `work` is dropped (which must stop it: psql is killed
/// on drop) and the restore fails at once.
pub(crate) async fn watch_database<T>(
    admin: &mut PgConnection,
    db: &str,
    budget: &Budget,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let mut work = std::pin::pin!(work);
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = tick.tick() => {
                let size: Option<i64> = sqlx::query_scalar(
                    "SELECT pg_catalog.pg_database_size(oid) FROM pg_catalog.pg_database WHERE datname = $1",
                )
                .bind(db)
                .fetch_optional(&mut *admin)
                .await?;
                budget.check_database(size.unwrap_or(0).max(0) as u64)?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_and_files_share_one_limit() {
        let budget = Budget::new(100, "your plan's storage (1 MB)");
        assert!(budget.add_dump(60).is_ok());
        assert!(budget.add_files(40).is_ok());
        let refused = budget.add_files(1);
        assert!(
            matches!(&refused, Err(OdooError::RestoreTooLarge { max_bytes: 100, limit }) if limit.contains("plan")),
            "{refused:?}"
        );
        let budget = Budget::new(100, "x");
        assert!(budget.check_database(100).is_ok() && budget.check_database(101).is_err());
    }
}
