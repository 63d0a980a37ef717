//! The engine under injected faults: every test starts its own PostgreSQL
//! and Redis servers (testkit's private servers) so it can flush, restart,
//! pause and kill them, and runs worker processes against them: this test
//! binary re-executed as the real worker library with the fault handlers
//! (`handlers.rs`), or the real worker binary. A nextest group of their own
//! (`.config/nextest.toml`) runs them one at a time.

mod handlers;
mod world;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::ensure;
use saas_core::config::{DataPlaneSettings, Env, WorkerSettings};
use saas_core::ops::OperationKind;
use serde_json::json;
use world::{Worker, World, ensure_each_succeeded_once, ensure_no_overlap};

/// The worker process body, run when this binary is re-executed as a child.
#[test]
#[ignore = "entry point of the worker child processes, not a test by itself"]
fn child_worker_entry() {
    if std::env::var_os("FAULT_TEST_CHILD").is_none() {
        return;
    }
    let Ok(config) = saas_core::run::config(saas_core::Service::Worker) else {
        std::process::exit(2);
    };
    let env = Env::from_process();
    let settings =
        WorkerSettings::from_env(&env).and_then(|w| Ok((w, DataPlaneSettings::from_env(&env)?)));
    let (settings, data_plane) = match settings {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            std::process::exit(2);
        }
    };
    let scratch = PathBuf::from(std::env::var("FAULT_SCRATCH").unwrap_or_default());
    let code = saas_core::run::block_on(&config, async {
        let app = worker::build(&config, settings, |pool| async {
            let store_url = data_plane.backup.primary.clone();
            // The platform's own start-up (the backup store sweep included),
            // then the fault handlers instead of the platform's.
            worker::start_platform(&config, data_plane, pool.clone()).await?;
            let store = saas_odoo::BackupStore::from_url(&store_url)
                .map_err(|err| saas_core::StartupError::Internal(err.to_string()))?;
            Ok(handlers::FaultHandlers {
                pool,
                store,
                scratch,
            })
        })
        .await?;
        let listener = saas_core::service::bind(&config).await?;
        app.serve(listener, saas_core::service::shutdown_signal())
            .await
            .map_err(|err| saas_core::StartupError::Stopped(err.to_string()))
    });
    std::process::exit(if code == std::process::ExitCode::SUCCESS {
        0
    } else {
        1
    });
}

/// Polls `/readyz` until `want` (and, for a 503, `failed` naming `names`).
async fn wait_ready_status(
    worker: &Worker,
    want: u16,
    names: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        if let Ok((status, body)) = worker.readyz().await {
            let named = body["failed"]
                .as_array()
                .is_some_and(|failed| failed.iter().any(|f| f == names));
            if status == want && (want == 200 || named) {
                return Ok(());
            }
            last = Some((status, body));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!(
        "/readyz never answered {want} naming {names:?} within {timeout:?}; last: {last:?}"
    )
}

#[tokio::test]
async fn flushall_with_50_operations_queued_recovers_without_a_restart() -> anyhow::Result<()> {
    let world = World::new().await?;
    let tenants = world.tenants(50).await?;
    let mut worker = world.worker(&[("WORKER_HEARTBEAT_SECS", "1")]).await?;
    wait_ready_status(&worker, 200, "", Duration::from_secs(10)).await?;
    let ids = world
        .request_each(
            &tenants,
            OperationKind::Backup,
            |_| json!({ "sleep_ms": 300 }),
        )
        .await?;
    world.wait_results(2, Duration::from_secs(20)).await?;

    world.redis.flushall().await?;
    wait_ready_status(&worker, 503, "queue", Duration::from_secs(15)).await?;
    ensure!(worker.metric("queue_consumer_up").await? == 0.0);
    wait_ready_status(&worker, 200, "", Duration::from_secs(30)).await?;
    ensure!(worker.metric("queue_consumer_up").await? == 1.0);

    let done = world.settle(&ids, Duration::from_secs(60)).await?;
    ensure_each_succeeded_once(&world, &done).await?;
    worker.ensure_alive().await?;
    ensure!(
        worker.process.log().contains("registering a new one"),
        "{}",
        worker.process.log()
    );
    Ok(())
}

#[tokio::test]
async fn redis_restarted_during_50_operations_loses_none_and_runs_none_twice() -> anyhow::Result<()>
{
    let mut world = World::new().await?;
    let tenants = world.tenants(50).await?;
    let mut worker = world.worker(&[("WORKER_HEARTBEAT_SECS", "1")]).await?;
    let ids = world
        .request_each(
            &tenants,
            OperationKind::Backup,
            |_| json!({ "sleep_ms": 300 }),
        )
        .await?;
    world.wait_results(5, Duration::from_secs(20)).await?;

    world.redis.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    world.redis.restart().await?;

    let done = world.settle(&ids, Duration::from_secs(90)).await?;
    ensure_each_succeeded_once(&world, &done).await?;
    let runs = world.runs().await?;
    ensure!(
        runs.len() == ids.len(),
        "{} runs of {} operations",
        runs.len(),
        ids.len()
    );
    wait_ready_status(&worker, 200, "", Duration::from_secs(30)).await?;
    worker.ensure_alive().await?;
    Ok(())
}

#[tokio::test]
async fn postgres_restarted_during_30_operations_records_each_once() -> anyhow::Result<()> {
    let world = World::new().await?;
    let tenants = world.tenants(30).await?;
    let mut worker = world
        .worker(&[("WORKER_HEARTBEAT_SECS", "2"), ("ORPHAN_AFTER_SECS", "10")])
        .await?;
    let ids = world
        .request_each(
            &tenants,
            OperationKind::Backup,
            |_| json!({ "sleep_ms": 400 }),
        )
        .await?;
    world.wait_results(4, Duration::from_secs(20)).await?;

    world.pg.restart().await?;

    let done = world.settle(&ids, Duration::from_secs(90)).await?;
    ensure_each_succeeded_once(&world, &done).await?;
    worker.ensure_alive().await?;
    Ok(())
}

/// The default tolerance (60 s) outlasts a 30 s pause: nothing is taken
/// over, nothing runs twice (the old one, 3 s here, re-ran them all).
#[tokio::test]
async fn postgres_paused_30s_during_30_operations_runs_each_once() -> anyhow::Result<()> {
    let world = World::new().await?;
    let tenants = world.tenants(30).await?;
    let mut worker = world.worker(&[]).await?;
    let ids = world
        .request_each(
            &tenants,
            OperationKind::Backup,
            |_| json!({ "sleep_ms": 500 }),
        )
        .await?;
    world.wait_results(3, Duration::from_secs(20)).await?;

    world.pg.pause()?;
    tokio::time::sleep(Duration::from_secs(30)).await;
    world.pg.resume()?;

    let done = world.settle(&ids, Duration::from_secs(90)).await?;
    ensure_each_succeeded_once(&world, &done).await?;
    for op in &done {
        ensure!(op.attempts == 1, "ran {} times: {op:?}", op.attempts);
    }
    let runs = world.runs().await?;
    ensure!(
        runs.len() == ids.len(),
        "{} runs of {} operations",
        runs.len(),
        ids.len()
    );
    ensure!(runs.iter().all(|run| run.attempt == 1), "{runs:?}");
    worker.ensure_alive().await?;
    Ok(())
}

#[tokio::test]
async fn two_workers_one_stopped_40s_one_result_each_and_no_tenant_overlap() -> anyhow::Result<()> {
    let world = World::new().await?;
    let tenants = world.tenants(50).await?;
    // A short tolerance, so the stalled worker's operations are taken over.
    let settings = [("WORKER_HEARTBEAT_SECS", "2"), ("ORPHAN_AFTER_SECS", "10")];
    let mut stalled = world.worker(&settings).await?;
    let mut other = world.worker(&settings).await?;
    let kinds = [
        OperationKind::Backup,
        OperationKind::CollectUsage,
        OperationKind::HealthCheck,
        OperationKind::PruneBackups,
        OperationKind::ChangePlan,
        OperationKind::Suspend,
    ];
    let mut ids = Vec::new();
    for (k, kind) in kinds.into_iter().enumerate() {
        let sleep = |n: usize| json!({ "sleep_ms": 150 + (n * 37 + k * 53) % 300 });
        ids.extend(world.request_each(&tenants, kind, sleep).await?);
    }
    ensure!(ids.len() == 300);
    world.wait_results(30, Duration::from_secs(60)).await?;
    wait_running_in(&world, stalled.process.pid()).await?;

    stalled.process.signal("STOP")?;
    tokio::time::sleep(Duration::from_secs(40)).await;
    stalled.process.signal("CONT")?;

    let done = world.settle(&ids, Duration::from_secs(120)).await?;
    ensure_each_succeeded_once(&world, &done).await?;
    let runs = world.runs().await?;
    ensure_no_overlap(&runs, |run| run.tenant_id)?;
    ensure_no_overlap(&runs, |run| run.operation_id)?;
    ensure!(
        done.iter().any(|op| op.attempts >= 2
            && op
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("stopped while running"))),
        "no operation of the stalled worker was taken over"
    );
    let stalled_pid = i32::try_from(stalled.process.pid())?;
    ensure!(
        runs.iter()
            .any(|run| run.pid == stalled_pid && run.outcome.as_deref() == Some("lost")),
        "the stalled worker's attempts did not stop on losing their lease"
    );
    // The stalled worker's consumer was reaped meanwhile: it registers again.
    wait_ready_status(&stalled, 200, "", Duration::from_secs(30)).await?;
    stalled.ensure_alive().await?;
    other.ensure_alive().await?;
    Ok(())
}

async fn wait_running_in(world: &World, pid: u32) -> anyhow::Result<()> {
    let pid = i32::try_from(pid)?;
    for _ in 0..400 {
        let running: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM fault_runs WHERE pid = $1 AND finished_at IS NULL",
        )
        .bind(pid)
        .fetch_one(&world.pool)
        .await?;
        if running > 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("worker {pid} never ran anything")
}

#[tokio::test]
async fn kill_9_mid_backup_leaves_no_partial_object_after_the_next_start() -> anyhow::Result<()> {
    let world = World::new().await?;
    let tenant = world.tenants(1).await?[0];
    let settings = [("WORKER_HEARTBEAT_SECS", "1"), ("ORPHAN_AFTER_SECS", "3")];
    let first = world.worker(&settings).await?;
    let ids = world
        .request_each(
            &[tenant],
            OperationKind::Backup,
            |_| json!({ "slow_upload": true }),
        )
        .await?;
    let tenant_dir = world
        .scratch
        .path()
        .join("backups")
        .join(tenant.to_string());
    let mut staged = Vec::new();
    for _ in 0..400 {
        staged = staging_files(&tenant_dir);
        if !staged.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    ensure!(
        !staged.is_empty(),
        "the upload never started:\n{}",
        first.process.log()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.process.signal("KILL")?;
    drop(first);
    ensure!(
        staging_files(&tenant_dir) == staged,
        "the killed upload left no staging file to sweep"
    );
    // The dead worker's session (and its tenant lock) is gone first.
    for _ in 0..200 {
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .fetch_one(&world.pool)
        .await?;
        if held == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let second = world.worker(&settings).await?;
    let mut left = staged.clone();
    for _ in 0..400 {
        left = staging_files(&tenant_dir);
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(
        left.is_empty(),
        "partial objects remain: {left:?}\n{}",
        second.process.log()
    );
    let done = world.settle(&ids, Duration::from_secs(30)).await?;
    ensure_each_succeeded_once(&world, &done).await?;
    ensure!(
        files_under(&tenant_dir).is_empty(),
        "{:?}",
        files_under(&tenant_dir)
    );
    Ok(())
}

fn staging_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .and_then(|name| name.rsplit_once('#'))
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The real worker binary: when Redis stays away longer than
/// `WORKER_QUEUE_GIVE_UP_SECS` it says so on `/readyz`, then exits 1 for
/// its supervisor to restart it, rather than live on doing nothing.
#[tokio::test]
async fn a_worker_whose_queue_stays_down_exits_non_zero() -> anyhow::Result<()> {
    let mut world = World::new().await?;
    let mut worker = world
        .real_worker(&[
            ("WORKER_HEARTBEAT_SECS", "1"),
            ("ORPHAN_AFTER_SECS", "3"),
            ("WORKER_QUEUE_GIVE_UP_SECS", "5"),
        ])
        .await?;
    wait_ready_status(&worker, 200, "", Duration::from_secs(10)).await?;

    world.redis.kill();
    wait_ready_status(&worker, 503, "queue", Duration::from_secs(10)).await?;
    let status = worker.process.wait(Duration::from_secs(40)).await?;
    ensure!(
        status.code() == Some(1),
        "exit {status}:\n{}",
        worker.process.log()
    );
    let log = worker.process.log();
    ensure!(
        log.contains("WORKER_QUEUE_GIVE_UP_SECS"),
        "the exit does not say why:\n{log}"
    );
    Ok(())
}
