//! The fault tests' handlers: each records its invocation (start, end,
//! outcome) and, under its lease, one result in the same transaction that
//! marks the operation succeeded. A lost lease ends the run at once.

use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use saas_core::ops::Operation;
use saas_odoo::BackupStore;
use sqlx::PgPool;
use worker::handlers::{HandlerError, Handlers};
use worker::lease::{Lease, taken_over};

pub struct FaultHandlers {
    pub pool: PgPool,
    pub store: BackupStore,
    pub scratch: PathBuf,
}

impl Handlers for FaultHandlers {
    fn run(
        &self,
        operation: Operation,
        lease: Lease,
    ) -> BoxFuture<'static, Result<(), HandlerError>> {
        let pool = self.pool.clone();
        let store = self.store.clone();
        let scratch = self.scratch.clone();
        Box::pin(async move {
            let run: i64 = patiently(&lease, || {
                sqlx::query_scalar(
                    "INSERT INTO fault_runs (operation_id, tenant_id, attempt, pid)
                     VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(operation.id)
                .bind(operation.tenant_id)
                .bind(operation.attempts)
                .bind(i32::try_from(std::process::id()).unwrap_or(i32::MAX))
                .fetch_one(&pool)
            })
            .await?;
            let work = async {
                if operation.args["slow_upload"] == true && operation.attempts == 1 {
                    slow_upload(&store, &scratch, &operation).await?;
                }
                let sleep = operation.args["sleep_ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(sleep)).await;
                Ok::<(), HandlerError>(())
            };
            let worked = tokio::select! {
                worked = work => worked,
                () = lease.lost() => Err(taken_over()),
            };
            let recorded = match worked {
                Ok(()) => record_patiently(&pool, &lease, &operation, run).await,
                Err(err) => Err(err),
            };
            if let Err(err) = &recorded {
                let outcome = if lease.is_lost() { "lost" } else { "failed" };
                let _ = patiently(&lease, || {
                    sqlx::query(
                        "UPDATE fault_runs SET finished_at = clock_timestamp(), outcome = $2 WHERE id = $1",
                    )
                    .bind(run)
                    .bind(outcome)
                    .execute(&pool)
                })
                .await;
                tracing::warn!(error = %err, "fault handler run ended without a result");
            }
            recorded
        })
    }
}

/// [`record`], again while PostgreSQL is away and the lease holds.
async fn record_patiently(
    pool: &PgPool,
    lease: &Lease,
    operation: &Operation,
    run: i64,
) -> Result<(), HandlerError> {
    loop {
        match record(pool, lease, operation, run).await {
            Err(err) if err.retryable && !lease.is_lost() => {
                tracing::warn!(error = %err, "fault handler: recording failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            recorded => return recorded,
        }
    }
}

/// The result, the run's end and the operation's success, in one
/// transaction under the lease.
async fn record(
    pool: &PgPool,
    lease: &Lease,
    operation: &Operation,
    run: i64,
) -> Result<(), HandlerError> {
    let mut tx = pool.begin().await?;
    lease.complete(&mut tx).await?;
    sqlx::query("INSERT INTO fault_results (operation_id, attempt) VALUES ($1, $2)")
        .bind(operation.id)
        .bind(operation.attempts)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE fault_runs SET finished_at = clock_timestamp(), outcome = 'done' WHERE id = $1",
    )
    .bind(run)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Runs `query` again while PostgreSQL is away (a pause, a restart) and
/// the lease holds, as a careful handler would.
async fn patiently<T, F, Fut>(lease: &Lease, query: F) -> Result<T, HandlerError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    loop {
        match query().await {
            Ok(value) => return Ok(value),
            Err(err) if is_transient(&err) && !lease.is_lost() => {
                tracing::warn!(error = %err, "fault handler: PostgreSQL away; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// A connection that could not be made or was cut (SQLSTATE classes 08
/// and 57: the server shut down or restarted).
fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57")),
        _ => false,
    }
}

/// A multipart upload that never ends on its own: the source is a FIFO fed
/// a little at a time, so the worker can be killed mid-upload.
async fn slow_upload(
    store: &BackupStore,
    scratch: &std::path::Path,
    operation: &Operation,
) -> Result<(), HandlerError> {
    let fifo = scratch.join(format!("{}.fifo", operation.id));
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !made.is_ok_and(|status| status.success()) {
        return Err(HandlerError::permanent("mkfifo failed"));
    }
    let feed = fifo.clone();
    std::thread::spawn(move || {
        use std::io::Write as _;
        let Ok(mut pipe) = std::fs::OpenOptions::new().write(true).open(&feed) else {
            return;
        };
        let chunk = vec![7u8; 256 * 1024];
        for _ in 0..4000 {
            if pipe.write_all(&chunk).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let key = format!("{}/t_shop/{}.zip", operation.tenant_id, operation.id);
    store
        .upload_file(&key, &fifo)
        .await
        .map_err(|err| HandlerError::transient(format!("upload: {err}")))?;
    Ok(())
}
