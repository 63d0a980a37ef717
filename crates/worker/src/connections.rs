//! PostgreSQL connections of every active Odoo server's cluster, from
//! `pg_stat_activity` and `max_connections`: who holds them (Odoo's role,
//! the platform's data plane, anyone else) and the limit, so an alert fires
//! before a full cluster turns customers away ("too many clients").

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::metrics::WorkerMetrics;
use crate::servers::{ServerRow, active_servers};

/// How often every worker reads the clusters' connections.
pub const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// One cluster's connections by holder, and its limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterConnections {
    pub odoo: i64,
    pub platform: i64,
    pub other: i64,
    /// `max_connections`.
    pub limit: i64,
}

impl ClusterConnections {
    pub fn in_use(&self) -> i64 {
        self.odoo + self.platform + self.other
    }
}

/// Client sessions on the cluster of `row`: Odoo's role; the platform's
/// (its data plane's sessions, guests, pg_dump and psql are named
/// `saas-odoo...`, its services' pools `admin`, `portal`, `worker`, when the
/// platform database shares the cluster); and the rest.
pub async fn read(row: &ServerRow) -> anyhow::Result<ClusterConnections> {
    let mut server = row.connect().map_err(|e| anyhow::anyhow!(e.message))?;
    // A full cluster is answered below; waiting here would only delay it.
    server.slot_wait.budget = Duration::from_secs(2);
    let mut conn = server.connect_admin().await?;
    let (limit, odoo, platform, total): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT current_setting('max_connections')::bigint,
                count(*) FILTER (WHERE usename = $1),
                count(*) FILTER (WHERE usename <> $1 AND (application_name LIKE 'saas-odoo%'
                                  OR application_name IN ('admin', 'portal', 'worker'))),
                count(*)
           FROM pg_stat_activity WHERE backend_type = 'client backend'",
    )
    .bind(&row.odoo_db_role)
    .fetch_one(&mut conn)
    .await?;
    Ok(ClusterConnections {
        odoo,
        platform,
        other: total - odoo - platform,
        limit,
    })
}

/// Refreshes the gauges of every active server. A cluster that refuses the
/// reading session for want of a slot is full: it reads as the last known
/// limit in use (by others).
pub async fn refresh(
    pool: &PgPool,
    metrics: &WorkerMetrics,
    last_limit: &Mutex<BTreeMap<String, i64>>,
) -> anyhow::Result<()> {
    for row in active_servers(pool).await? {
        let reading = match read(&row).await {
            Ok(reading) => reading,
            Err(err) => {
                let full = err
                    .downcast_ref::<saas_odoo::OdooError>()
                    .is_some_and(saas_odoo::is_too_many_clients);
                let limit = last_limit.lock().await.get(&row.name).copied();
                match (full, limit) {
                    (true, Some(limit)) => {
                        tracing::warn!(server = %row.name, "the Odoo cluster has no connection slot left");
                        ClusterConnections {
                            other: limit,
                            limit,
                            ..ClusterConnections::default()
                        }
                    }
                    _ => {
                        tracing::warn!(server = %row.name, error = %format!("{err:#}"), "cannot read the cluster's connections");
                        continue;
                    }
                }
            }
        };
        last_limit
            .lock()
            .await
            .insert(row.name.clone(), reading.limit);
        for (holder, count) in [
            ("odoo", reading.odoo),
            ("platform", reading.platform),
            ("other", reading.other),
        ] {
            metrics
                .db_connections
                .with_label_values(&[&row.name, holder])
                .set(count);
        }
        metrics
            .db_max_connections
            .with_label_values(&[&row.name])
            .set(reading.limit);
    }
    Ok(())
}

/// Refreshes the gauges every [`REFRESH_EVERY`] until aborted (in every
/// worker: each one's scrape is current).
pub async fn watch(pool: PgPool, metrics: WorkerMetrics) {
    let last_limit = Arc::new(Mutex::new(BTreeMap::new()));
    let mut tick = tokio::time::interval(REFRESH_EVERY);
    loop {
        tick.tick().await;
        if let Err(err) = refresh(&pool, &metrics, &last_limit).await {
            tracing::warn!(error = %format!("{err:#}"), "connection metrics failed");
        }
    }
}
