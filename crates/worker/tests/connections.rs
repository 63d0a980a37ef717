//! The worker's connection gauges per Odoo server, read from a private
//! PostgreSQL cluster (ten slots, none reserved) where the test knows every
//! session: Odoo's role, the platform's services and data plane, anyone
//! else; and a full cluster reads as full, not as an error.

use std::collections::BTreeMap;

use prometheus::Registry;
use saas_testkit::{PrivatePostgres, TestDb};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Connection as _, Executor as _, PgConnection};
use tokio::sync::Mutex;
use worker::connections::{ClusterConnections, refresh};
use worker::metrics::WorkerMetrics;

const SLOTS: i64 = 10;

async fn session(pg: &PrivatePostgres, user: &str, app: &str) -> sqlx::Result<PgConnection> {
    let options: PgConnectOptions = pg.url("postgres").parse()?;
    options.username(user).application_name(app).connect().await
}

fn gauges(metrics: &WorkerMetrics, server: &str) -> ClusterConnections {
    let held = |holder: &str| {
        metrics
            .db_connections
            .with_label_values(&[server, holder])
            .get()
    };
    ClusterConnections {
        odoo: held("odoo"),
        platform: held("platform"),
        other: held("other"),
        limit: metrics
            .db_max_connections
            .with_label_values(&[server])
            .get(),
    }
}

#[tokio::test]
async fn gauges_count_each_holder_and_a_full_cluster_reads_full() -> anyhow::Result<()> {
    let pg = PrivatePostgres::start_with(&[
        ("max_connections", &SLOTS.to_string()),
        ("superuser_reserved_connections", "0"),
    ])
    .await?;
    {
        let mut admin = PgConnection::connect(&pg.url("postgres")).await?;
        admin.execute("CREATE ROLE odoo LOGIN").await?;
        admin.execute("CREATE ROLE dba LOGIN").await?;
        admin.close().await?;
    }
    let platform = TestDb::new("connections").await?;
    let pool = platform.pool().await?;
    saas_core::db::MIGRATOR.run(&pool).await?;
    sqlx::query(
        "INSERT INTO servers (id, name, public_url, internal_url, pg_url, odoo_db_role, filestore_root, capacity)
         VALUES ($1, 'odoo-a', 'http://127.0.0.1:9', 'http://127.0.0.1:9', $2, 'odoo', '/nonexistent', 10)",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(pg.url("postgres"))
    .execute(&pool)
    .await?;
    let metrics = WorkerMetrics::register(&Registry::new())?;
    let last_limit = Mutex::new(BTreeMap::new());

    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(session(&pg, "odoo", "odoo-worker").await?);
    }
    held.push(session(&pg, "postgres", "portal").await?);
    held.push(session(&pg, "postgres", "saas-odoo-backup").await?);
    held.push(session(&pg, "dba", "psql").await?);
    refresh(&pool, &metrics, &last_limit).await?;
    // The reading session itself is the platform's third.
    assert_eq!(
        gauges(&metrics, "odoo-a"),
        ClusterConnections {
            odoo: 3,
            platform: 3,
            other: 1,
            limit: SLOTS
        }
    );

    // Every slot taken: the reading session is refused, and the cluster
    // reads as full instead of keeping the last numbers.
    loop {
        match session(&pg, "dba", "filler").await {
            Ok(conn) => held.push(conn),
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("53300") => break,
            Err(e) => return Err(e.into()),
        }
        anyhow::ensure!(held.len() as i64 <= SLOTS, "more sessions than slots");
    }
    refresh(&pool, &metrics, &last_limit).await?;
    let full = gauges(&metrics, "odoo-a");
    assert_eq!((full.in_use(), full.limit), (SLOTS, SLOTS), "{full:?}");

    drop(held);
    Ok(())
}
