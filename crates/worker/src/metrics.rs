//! The worker's own metrics, labelled by operation kind and outcome only.

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

#[derive(Clone)]
pub struct WorkerMetrics {
    pub operations: IntCounterVec,
    pub duration: HistogramVec,
    pub queue_depth: IntGauge,
    pub requeued: IntCounterVec,
    pub workers_alive: IntGauge,
    pub queue_consumer_up: IntGauge,
    pub backup_overdue: IntGauge,
    pub last_backup: Gauge,
    /// Per Odoo server (its name) and holder (odoo, platform, other).
    pub db_connections: IntGaugeVec,
    /// Per Odoo server: its cluster's `max_connections`.
    pub db_max_connections: IntGaugeVec,
}

impl WorkerMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let operations = IntCounterVec::new(
            Opts::new(
                "operations_total",
                "Finished operation attempts by kind and outcome (succeeded, failed, retried)",
            ),
            &["kind", "outcome"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "operation_duration_seconds",
                "Time an operation attempt ran, by kind",
            )
            .buckets(vec![
                0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
            ]),
            &["kind"],
        )?;
        let queue_depth = IntGauge::new("queue_depth", "Operations queued in PostgreSQL")?;
        let requeued = IntCounterVec::new(
            Opts::new(
                "operations_requeued_total",
                "Operations the reconciler pushed again, by reason",
            ),
            &["reason"],
        )?;
        let workers_alive = IntGauge::new("workers_alive", "Workers with a live heartbeat")?;
        let queue_consumer_up = IntGauge::new(
            "queue_consumer_up",
            "1 while this worker's queue consumer is registered with Redis and taking jobs",
        )?;
        let backup_overdue = IntGauge::new(
            "tenants_backup_overdue",
            "Active tenants whose newest successful backup is older than 26 hours",
        )?;
        let last_backup = Gauge::new(
            "last_successful_backup_timestamp_seconds",
            "Unix time of the newest successful backup of any tenant",
        )?;
        let db_connections = IntGaugeVec::new(
            Opts::new(
                "odoo_server_db_connections",
                "PostgreSQL client sessions on an Odoo server's cluster, by holder \
                 (odoo: Odoo's role; platform: this platform; other)",
            ),
            &["server", "holder"],
        )?;
        let db_max_connections = IntGaugeVec::new(
            Opts::new(
                "odoo_server_db_max_connections",
                "max_connections of an Odoo server's PostgreSQL cluster",
            ),
            &["server"],
        )?;
        registry.register(Box::new(operations.clone()))?;
        registry.register(Box::new(db_connections.clone()))?;
        registry.register(Box::new(db_max_connections.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(requeued.clone()))?;
        registry.register(Box::new(workers_alive.clone()))?;
        registry.register(Box::new(queue_consumer_up.clone()))?;
        registry.register(Box::new(backup_overdue.clone()))?;
        registry.register(Box::new(last_backup.clone()))?;
        registry.register(Box::new(crate::domains::RENEWAL_FAILURES.clone()))?;
        registry.register(Box::new(crate::domains::EXPIRING.clone()))?;
        // Every series exists from the start, so dashboards and alerts see
        // zeros instead of gaps.
        for reason in ["not_in_redis", "worker_died"] {
            requeued.with_label_values(&[reason]);
        }
        for kind in saas_core::ops::OperationKind::ALL {
            for outcome in ["succeeded", "failed", "retried"] {
                operations.with_label_values(&[kind.as_str(), outcome]);
            }
            duration.with_label_values(&[kind.as_str()]);
        }
        Ok(Self {
            operations,
            duration,
            queue_depth,
            requeued,
            workers_alive,
            queue_consumer_up,
            backup_overdue,
            last_backup,
            db_connections,
            db_max_connections,
        })
    }
}
