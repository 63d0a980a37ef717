//! Schedules, in UTC: daily backups at each plan's backup hour, pruning by
//! plan retention, usage collection, trial expiry (suspend at the end of the
//! trial, delete after the plan's grace period) and tenant health probes.
//! Each enqueues operations through `ops::request_change`, which returns an
//! already queued operation instead of adding a second one; the queries skip
//! tenants whose operation of the kind already ran in the period.

use saas_core::ops::{self, Actor, OperationKind, OpsQueue};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::metrics::WorkerMetrics;
use saas_core::error_chain::Chain;

/// An active tenant without a successful backup for this long is overdue.
pub const BACKUP_OVERDUE_AFTER: &str = "26 hours";

struct Job {
    kind: OperationKind,
    args: Value,
    /// Tenant ids due for the job.
    query: &'static str,
}

fn jobs() -> Vec<Job> {
    vec![
        Job {
            kind: OperationKind::Backup,
            args: json!({ "kind": "scheduled" }),
            query: "SELECT t.id FROM tenants t JOIN plans p ON p.id = t.plan_id
                    WHERE t.state = 'active' AND p.max_backups > 0
                      AND extract(hour FROM now() AT TIME ZONE 'UTC') >= p.backup_hour_utc
                      AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.tenant_id = t.id AND o.kind = 'backup'
                                      AND o.args->>'kind' = 'scheduled'
                                      AND o.created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')",
        },
        Job {
            kind: OperationKind::PruneBackups,
            args: json!({}),
            query: "SELECT t.id FROM tenants t JOIN plans p ON p.id = t.plan_id
                    WHERE t.state IN ('active', 'suspended')
                      AND ((SELECT count(*) FROM backups b WHERE b.tenant_id = t.id AND b.kind = 'scheduled') > p.max_backups
                           OR EXISTS (SELECT 1 FROM backups b WHERE b.tenant_id = t.id AND b.expires_at < now()))
                      AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.tenant_id = t.id AND o.kind = 'prune_backups'
                                      AND o.state IN ('queued', 'running'))",
        },
        Job {
            kind: OperationKind::CollectUsage,
            args: json!({}),
            query: "SELECT t.id FROM tenants t
                    WHERE t.state = 'active'
                      AND (t.usage_collected_at IS NULL OR t.usage_collected_at < now() - interval '1 hour')
                      AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.tenant_id = t.id AND o.kind = 'collect_usage'
                                      AND o.created_at > now() - interval '1 hour')",
        },
        Job {
            kind: OperationKind::Suspend,
            args: json!({ "reason": "the trial has ended: choose a paid plan in the portal to continue" }),
            query: "SELECT t.id FROM tenants t
                    WHERE t.state = 'active' AND t.trial_ends_at < now()",
        },
        Job {
            kind: OperationKind::Delete,
            args: json!({ "reason": "trial ended and the grace period passed" }),
            query: "SELECT t.id FROM tenants t JOIN plans p ON p.id = t.plan_id
                    WHERE t.state = 'suspended' AND t.trial_ends_at IS NOT NULL
                      AND t.trial_ends_at + make_interval(days => p.grace_days) < now()",
        },
        // Custom domains: certificates renewed 30 days before they expire
        // (a failed renewal is tried again after 12 hours), renewals an
        // operator asked for, and domains still waiting for DNS checked
        // again every 15 minutes once their operation gave up.
        Job {
            kind: OperationKind::SyncDomains,
            args: json!({}),
            query: "SELECT DISTINCT t.id FROM tenants t JOIN tenant_domains d ON d.tenant_id = t.id
                    WHERE t.state IN ('active', 'suspended')
                      AND ((d.state = 'live'
                            AND (d.renew_requested_at IS NOT NULL
                                 OR (d.cert_not_after < now() + interval '30 days'
                                     AND (d.renewed_at IS NULL OR d.renewed_at < now() - interval '12 hours'))))
                           OR (d.state = 'pending_dns'
                               AND (d.checked_at IS NULL OR d.checked_at < now() - interval '15 minutes')))
                      AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.tenant_id = t.id AND o.kind = 'sync_domains'
                                      AND o.state IN ('queued', 'running'))",
        },
        Job {
            kind: OperationKind::HealthCheck,
            args: json!({}),
            query: "SELECT t.id FROM tenants t
                    WHERE t.state = 'active'
                      AND NOT EXISTS (SELECT 1 FROM operations o WHERE o.tenant_id = t.id AND o.kind = 'health_check'
                                      AND o.created_at > now() - interval '1 hour')",
        },
    ]
}

/// One pass of every schedule; returns how many operations it requested.
pub async fn run_once(pool: &PgPool, queue: &OpsQueue) -> anyhow::Result<usize> {
    let actor = Actor::system("scheduler");
    let mut requested = 0;
    for job in jobs() {
        let due: Vec<Uuid> = sqlx::query_scalar(&format!("{} LIMIT 500", job.query))
            .fetch_all(pool)
            .await?;
        for tenant in due {
            match ops::request_change(
                pool,
                Some(queue),
                tenant,
                job.kind,
                job.args.clone(),
                &actor,
            )
            .await
            {
                Ok(done) if done.created => requested += 1,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(kind = %job.kind, %tenant, error = %Chain(&err), "schedule could not request")
                }
            }
        }
    }
    Ok(requested)
}

/// Refreshes the backup gauges.
pub async fn backup_metrics(pool: &PgPool, metrics: &WorkerMetrics) -> anyhow::Result<()> {
    let overdue: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM tenants t
         WHERE t.state = 'active' AND t.created_at < now() - interval '{BACKUP_OVERDUE_AFTER}'
           AND NOT EXISTS (SELECT 1 FROM backups b WHERE b.tenant_id = t.id
                           AND b.created_at > now() - interval '{BACKUP_OVERDUE_AFTER}')"
    ))
    .fetch_one(pool)
    .await?;
    metrics.backup_overdue.set(overdue);
    let newest: Option<f64> =
        sqlx::query_scalar("SELECT extract(epoch FROM max(created_at))::float8 FROM backups")
            .fetch_one(pool)
            .await?;
    if let Some(newest) = newest {
        metrics.last_backup.set(newest);
    }
    Ok(())
}
