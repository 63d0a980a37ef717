//! Emails the platform sends. A request only stores a message here
//! ([`Outbox::enqueue`], in the request's own transaction); the portal's
//! background sender delivers it over SMTP ([`claim_due`], [`mark_sent`],
//! [`mark_failed`]). Without an SMTP server messages stay here and operators
//! read them in admin. Each address gets at most
//! `MAIL_PER_RECIPIENT_PER_HOUR` messages an hour; the excess is dropped and
//! counted (`email_dropped_total`), never queued for later.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;
use sqlx::{Acquire, PgConnection, PgPool};
use uuid::Uuid;

/// Delivery attempts before a message is left in the outbox with its error.
pub const MAX_ATTEMPTS: i32 = 5;

/// One message.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct OutboxEmail {
    pub id: Uuid,
    pub to_address: String,
    pub subject: String,
    pub body_text: String,
    pub purpose: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

const COLUMNS: &str = "id, to_address, subject, body_text, purpose, created_at, sent_at, error";

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewEmail<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body_text: &'a str,
    pub purpose: &'a str,
}

pub async fn store(
    conn: &mut PgConnection,
    email: &NewEmail<'_>,
    sent: bool,
    error: Option<&str>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO email_outbox (id, to_address, subject, body_text, purpose, sent_at, error)
         VALUES ($1, $2, $3, $4, $5, CASE WHEN $6 THEN now() END, $7) RETURNING id",
    )
    .bind(Uuid::new_v4())
    .bind(email.to)
    .bind(email.subject)
    .bind(email.body_text)
    .bind(email.purpose)
    .bind(sent)
    .bind(error)
    .fetch_one(conn)
    .await
}

/// Newest first; `to` filters by recipient (case-insensitive).
pub async fn list(
    pool: &PgPool,
    to: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<OutboxEmail>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM email_outbox
         WHERE $1::text IS NULL OR lower(to_address) = lower($1)
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(to)
    .bind(limit.clamp(1, 1000))
    .bind(offset.max(0))
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<OutboxEmail>, sqlx::Error> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM email_outbox WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// What became of a message handed to [`Outbox::enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Queued(Uuid),
    /// The recipient already had its hourly share.
    Dropped,
}

/// Stores messages within the per-recipient limit, counting what it drops.
#[derive(Clone)]
pub struct Outbox {
    per_recipient_per_hour: u32,
    queued: IntCounterVec,
    dropped: IntCounterVec,
}

impl Outbox {
    pub fn new(
        per_recipient_per_hour: u32,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let queued = IntCounterVec::new(
            Opts::new(
                "email_queued_total",
                "Emails stored in the outbox, by purpose",
            ),
            &["purpose"],
        )?;
        let dropped = IntCounterVec::new(
            Opts::new(
                "email_dropped_total",
                "Emails dropped because their recipient had its hourly share, by purpose",
            ),
            &["purpose"],
        )?;
        registry.register(Box::new(queued.clone()))?;
        registry.register(Box::new(dropped.clone()))?;
        Ok(Self {
            per_recipient_per_hour,
            queued,
            dropped,
        })
    }

    /// Stores `email` unless its recipient already got its share of the
    /// last hour. Runs in the caller's transaction when `conn` is one (the
    /// message then exists exactly when the change it reports does);
    /// concurrent callers for one address are serialised by an advisory lock
    /// held until that transaction ends, so the limit holds under load.
    #[tracing::instrument(skip_all, fields(purpose = email.purpose))]
    pub async fn enqueue(
        &self,
        conn: &mut PgConnection,
        email: &NewEmail<'_>,
    ) -> Result<Enqueued, sqlx::Error> {
        let mut tx = conn.begin().await?;
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended('email_outbox:' || lower($1), 0))",
        )
        .bind(email.to)
        .execute(&mut *tx)
        .await?;
        let recent: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM email_outbox
             WHERE lower(to_address) = lower($1) AND created_at > now() - interval '1 hour'",
        )
        .bind(email.to)
        .fetch_one(&mut *tx)
        .await?;
        if recent >= i64::from(self.per_recipient_per_hour) {
            tx.commit().await?;
            self.dropped.with_label_values(&[email.purpose]).inc();
            tracing::warn!("recipient had its hourly share of email; message dropped");
            return Ok(Enqueued::Dropped);
        }
        let id = store(&mut tx, email, false, None).await?;
        tx.commit().await?;
        self.queued.with_label_values(&[email.purpose]).inc();
        Ok(Enqueued::Queued(id))
    }
}

/// Claims up to `batch` unsent messages that are due, for `lease`: another
/// sender skips them until the lease ends, so a sender that dies mid-way
/// only delays its messages. Each claim counts as an attempt; messages that
/// used [`MAX_ATTEMPTS`] stay in the outbox with their last error.
pub async fn claim_due(
    pool: &PgPool,
    batch: i64,
    lease: Duration,
) -> Result<Vec<OutboxEmail>, sqlx::Error> {
    sqlx::query_as(&format!(
        "UPDATE email_outbox SET attempts = attempts + 1,
                next_attempt_at = now() + make_interval(secs => $2)
         WHERE id IN (SELECT id FROM email_outbox
                      WHERE sent_at IS NULL AND attempts < $3 AND next_attempt_at <= now()
                      ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING {COLUMNS}"
    ))
    .bind(batch)
    .bind(lease.as_secs_f64())
    .bind(MAX_ATTEMPTS)
    .fetch_all(pool)
    .await
}

pub async fn mark_sent(pool: &PgPool, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE email_outbox SET sent_at = now(), error = NULL WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Records a failed attempt; the message is tried again after a delay that
/// doubles with each attempt (30 s, 1 min, 2 min, ...).
pub async fn mark_failed(pool: &PgPool, id: Uuid, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE email_outbox SET error = $2,
                next_attempt_at = now() + make_interval(secs => 30 * power(2.0::float8, greatest(attempts - 1, 0)))
         WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .execute(pool)
    .await
    .map(|_| ())
}
