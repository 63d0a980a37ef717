//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use saas_core::auth::session::SessionStore;
use saas_core::auth::throttle;
use saas_core::ops::OpsQueue;
use saas_core::shared_redis::SharedRedis;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::AppError;
use crate::mail::Mailer;
use crate::settings::PortalSettings;
use crate::store::BackupObjects;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: PgPool,
    pub redis: SharedRedis,
    pub sessions: SessionStore,
    pub settings: PortalSettings,
    pub mailer: Mailer,
    /// `None` when the store could not be opened at start-up (logged then).
    pub backups: Option<BackupObjects>,
    pub public_scheme: String,
    pub base_domain: String,
    pub secure_cookies: bool,
    /// Proxies whose forwarded headers name the client (`TRUSTED_PROXIES`).
    pub trusted_proxies: saas_core::edge::TrustedProxies,
    /// Sign-in throttling (per account and address, per address, per account).
    pub sign_in: saas_core::auth::signin::SignInThrottle,
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    pub async fn redis(&self) -> Result<ConnectionManager, AppError> {
        Ok(self.redis.conn().await?)
    }

    /// The operations queue, when Redis answers; operations are rows first,
    /// so without it the reconciler pushes them later.
    pub async fn queue(&self) -> Option<OpsQueue> {
        match self.redis.queue().await {
            Ok(queue) => Some(queue),
            Err(err) => {
                tracing::warn!(error = %err, "operations queue unavailable; the reconciler will push");
                None
            }
        }
    }

    pub fn backups(&self) -> Result<&BackupObjects, AppError> {
        self.backups
            .as_ref()
            .ok_or(AppError::Unavailable("backup storage"))
    }

    fn throttle_key(&self, what: &str, key: &str) -> String {
        format!(
            "{}portal:throttle:{what}:{}",
            self.redis.prefix(),
            saas_core::auth::sha256_hex(key)
        )
    }

    /// Counts an attempt against `what:key`; 429 once over `limit` per `window`.
    pub async fn throttle(
        &self,
        what: &str,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<(), AppError> {
        let mut conn = self.redis().await?;
        throttle::hit(&mut conn, &self.throttle_key(what, key), limit, window)
            .await?
            .map_err(|t| AppError::Throttled(t.retry_after))
    }

    /// 429 when `what:key` is already over `limit`, without counting an attempt.
    pub async fn throttle_check(&self, what: &str, key: &str, limit: u32) -> Result<(), AppError> {
        let mut conn = self.redis().await?;
        throttle::check(&mut conn, &self.throttle_key(what, key), limit)
            .await?
            .map_err(|t| AppError::Throttled(t.retry_after))
    }

    fn sessions_after_key(&self, customer: Uuid) -> String {
        format!("{}portal:sessions-after:{customer}", self.redis.prefix())
    }

    /// Ends every session of `customer` that exists now (password reset or
    /// change): sessions created at or before this second are refused when
    /// loaded. The mark outlives the longest session, then expires.
    pub async fn end_sessions(
        &self,
        conn: &mut ConnectionManager,
        customer: Uuid,
    ) -> Result<(), AppError> {
        let now = chrono::Utc::now().timestamp();
        let ttl = self.sessions.absolute.as_secs().saturating_add(60);
        let () = conn
            .set_ex(self.sessions_after_key(customer), now, ttl)
            .await?;
        Ok(())
    }

    /// The Unix second at or before which `customer`'s sessions were ended.
    pub async fn sessions_ended_at(
        &self,
        conn: &mut ConnectionManager,
        customer: Uuid,
    ) -> Result<Option<i64>, AppError> {
        Ok(conn.get(self.sessions_after_key(customer)).await?)
    }

    /// The public URL of an instance.
    pub fn instance_url(&self, subdomain: &str) -> String {
        format!("{}://{subdomain}.{}", self.public_scheme, self.base_domain)
    }

    /// Where links in emails point: the host the request came to when it is
    /// the portal's own name (or a local address), never anything else a
    /// client could inject.
    pub fn public_base(&self, headers: &HeaderMap) -> String {
        let own = format!("portal.{}", self.base_domain);
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                let name = h.rsplit_once(':').map_or(*h, |(name, port)| {
                    if port.bytes().all(|b| b.is_ascii_digit()) {
                        name
                    } else {
                        h
                    }
                });
                name == own || name == "localhost" || name == "127.0.0.1" || name == "[::1]"
            });
        format!("{}://{}", self.public_scheme, host.unwrap_or(&own))
    }
}
