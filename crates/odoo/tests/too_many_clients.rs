//! A full cluster is a wait, not a failure: on a private PostgreSQL with six
//! connection slots (none reserved), filled to the last slot by other
//! sessions, backup (pg_dump), restore (psql as a guest) and usage reads wait
//! for a slot and succeed once the sessions end; while the cluster stays full
//! they give up after their budget with the "too many clients" error, leaving
//! no object behind. pg_dump and psql's own words for it are recognised.

use std::time::{Duration, Instant};

use saas_odoo::{
    BackupStore, OdooServer, RestoreOptions, SlotWait, backup_tenant, collect_usage,
    is_too_many_clients, restore_tenant,
};
use saas_testkit::PrivatePostgres;
use secrecy::SecretString;
use sqlx::{Connection as _, Executor as _, PgConnection};
use url::Url;

const ROLE: &str = "odoo";
const DB: &str = "t_full_cluster";
const SLOTS: usize = 6;

struct FullCluster {
    pg: PrivatePostgres,
    server: OdooServer,
    _dir: tempfile::TempDir,
}

impl FullCluster {
    /// A cluster of [`SLOTS`] connections with a tenant database loaded from
    /// the Odoo 18 fixture and owned by the Odoo role.
    async fn new() -> anyhow::Result<Self> {
        let pg = PrivatePostgres::start_with(&[
            ("max_connections", &SLOTS.to_string()),
            ("superuser_reserved_connections", "0"),
        ])
        .await?;
        let mut admin = PgConnection::connect(&pg.url("postgres")).await?;
        admin
            .execute(format!("CREATE ROLE {ROLE} LOGIN").as_str())
            .await?;
        admin
            .execute(format!("CREATE DATABASE {DB} OWNER {ROLE}").as_str())
            .await?;
        admin.close().await?;
        let output = tokio::process::Command::new("psql")
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(saas_testkit::odoo::fixture_path())
            .arg(pg.url(DB))
            .env("PGOPTIONS", format!("-c role={ROLE}"))
            .output()
            .await?;
        anyhow::ensure!(
            output.status.success(),
            "loading the fixture: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("filestore").join(DB).join("ab"))?;
        std::fs::write(
            dir.path().join("filestore").join(DB).join("ab/ab12"),
            b"an attachment\n",
        )?;
        let server = OdooServer::new(
            SecretString::from(pg.url("postgres")),
            ROLE,
            dir.path().join("filestore"),
            Url::parse("http://127.0.0.1:9")?,
        )?;
        Ok(Self {
            pg,
            server,
            _dir: dir,
        })
    }

    /// Opens sessions until the cluster refuses one with SQLSTATE 53300;
    /// returns them (every slot taken).
    async fn fill(&self) -> anyhow::Result<Vec<PgConnection>> {
        let mut held = Vec::new();
        loop {
            match PgConnection::connect(&self.pg.url("postgres")).await {
                Ok(conn) => held.push(conn),
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("53300") => {
                    anyhow::ensure!(!held.is_empty(), "no slot at all");
                    return Ok(held);
                }
                Err(e) => return Err(e.into()),
            }
            anyhow::ensure!(held.len() <= SLOTS, "more sessions than slots");
        }
    }

    fn with_budget(&self, budget: Duration) -> OdooServer {
        let mut server = self.server.clone();
        server.slot_wait = SlotWait {
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(400),
            budget,
        };
        server
    }
}

/// Closes `held` after `after`, as Odoo handing idle connections back.
fn release_later(held: Vec<PgConnection>, after: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        for conn in held {
            let _ = conn.close().await;
        }
    })
}

#[tokio::test]
async fn backup_restore_and_usage_wait_for_a_slot_instead_of_failing() -> anyhow::Result<()> {
    let cluster = FullCluster::new().await?;
    let server = cluster.with_budget(Duration::from_secs(60));
    let backups = tempfile::tempdir()?;
    let store = BackupStore::from_url(&format!("file://{}", backups.path().display()))?;
    let pause = Duration::from_millis(1500);

    let held = cluster.fill().await?;
    let releasing = release_later(held, pause);
    let started = Instant::now();
    let info = backup_tenant(&server, DB, &store, "full/backup.zip").await?;
    anyhow::ensure!(
        started.elapsed() >= pause,
        "the backup did not wait for a slot ({:?}): was the cluster full?",
        started.elapsed()
    );
    releasing.await?;
    anyhow::ensure!(info.size_bytes > 0 && store.size("full/backup.zip").await? == info.size_bytes);

    let held = cluster.fill().await?;
    let releasing = release_later(held, pause);
    let started = Instant::now();
    let options = RestoreOptions::new(uuid::Uuid::new_v4(), Url::parse("https://full.saas.test")?);
    let report = restore_tenant(&server, DB, &store, "full/backup.zip", &options).await?;
    anyhow::ensure!(started.elapsed() >= pause, "the restore did not wait");
    anyhow::ensure!(report.replaced_existing, "{report:?}");
    releasing.await?;

    let held = cluster.fill().await?;
    let releasing = release_later(held, pause);
    let usage = collect_usage(&server, DB).await?;
    anyhow::ensure!(usage.db_bytes > 0 && usage.active_users >= 1, "{usage:?}");
    releasing.await?;
    Ok(())
}

#[tokio::test]
async fn a_cluster_that_stays_full_fails_after_the_budget_and_leaves_no_object()
-> anyhow::Result<()> {
    let cluster = FullCluster::new().await?;
    let server = cluster.with_budget(Duration::from_secs(2));
    let backups = tempfile::tempdir()?;
    let store = BackupStore::from_url(&format!("file://{}", backups.path().display()))?;

    let held = cluster.fill().await?;
    let started = Instant::now();
    let outcome = backup_tenant(&server, DB, &store, "full/never.zip").await;
    let waited = started.elapsed();
    drop(held);
    match outcome {
        Err(e) if is_too_many_clients(&e) => {}
        other => anyhow::bail!("expected the too-many-clients error, got {other:?}"),
    }
    anyhow::ensure!(
        waited >= Duration::from_millis(1500),
        "gave up after {waited:?}"
    );
    anyhow::ensure!(
        store.size("full/never.zip").await.is_err(),
        "a failed backup left an object"
    );
    Ok(())
}

/// What the real pg_dump and psql print when the cluster is full is what the
/// retry looks for.
#[tokio::test]
async fn pg_dump_and_psql_words_for_a_full_cluster_are_recognised() -> anyhow::Result<()> {
    let cluster = FullCluster::new().await?;
    let held = cluster.fill().await?;
    for tool in ["pg_dump", "psql"] {
        let output = tokio::process::Command::new(tool)
            .arg(format!("--dbname={}", cluster.pg.url(DB)))
            .args(if tool == "psql" {
                &["-X", "-c", "SELECT 1"][..]
            } else {
                &["--schema-only"][..]
            })
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        anyhow::ensure!(
            !output.status.success(),
            "{tool} connected to a full cluster"
        );
        anyhow::ensure!(
            saas_odoo::too_many_clients::stderr_says_too_many_clients(&stderr),
            "{tool}'s stderr not recognised: {stderr}"
        );
    }
    drop(held);
    Ok(())
}
