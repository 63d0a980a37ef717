//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use saas_core::auth::session::SessionStore;
use saas_core::auth::throttle;
use saas_core::ops::OpsQueue;
use saas_core::public_url::PublicUrls;
use saas_core::sealing::SealingKey;
use saas_core::shared_redis::SharedRedis;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::AppError;
use crate::mail::Mailer;
use crate::settings::PortalSettings;
use crate::store::BackupObjects;
use saas_core::error_chain::Chain;

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
    pub base_domain: String,
    /// Every public URL the portal generates (`PUBLIC_PORT` included).
    pub public: PublicUrls,
    /// Seals the Odoo admin passwords customers choose, for the worker.
    pub sealing: SealingKey,
    pub secure_cookies: bool,
    /// Proxies whose forwarded headers name the client (`TRUSTED_PROXIES`).
    pub trusted_proxies: saas_core::edge::TrustedProxies,
    /// Sign-in throttling (per account and address, per address, per account).
    pub sign_in: saas_core::auth::signin::SignInThrottle,
    /// Failed bearer tokens per client address and 15 minutes (`API_BEARER_FAILURES`).
    pub token_failures: u32,
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
                tracing::warn!(error = %Chain(&err), "operations queue unavailable; the reconciler will push");
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

    /// The public URL of an instance (`PUBLIC_PORT` included when it is
    /// not the scheme's default).
    pub fn instance_url(&self, subdomain: &str) -> String {
        self.public.tenant(subdomain)
    }

    /// Where an instance's "Open" link points: its primary domain once that
    /// is live (served over HTTPS by nginx), else its platform URL.
    pub fn open_url(&self, subdomain: &str, live_primary: Option<&str>) -> String {
        match live_primary {
            Some(domain) => format!("https://{domain}"),
            None => self.instance_url(subdomain),
        }
    }

    /// The instance's host, what a customer's domain is a CNAME to.
    pub fn instance_host(&self, subdomain: &str) -> String {
        format!("{subdomain}.{}", self.public.base_domain())
    }

    /// Where links in emails point: the portal's public origin, or the
    /// host the request came to when it is a local address (the portal run
    /// directly on the host, without nginx), never anything else a client
    /// could inject. nginx forwards the portal's own name without the port
    /// browsers used, so the configured one is what counts.
    pub fn public_base(&self, headers: &HeaderMap) -> String {
        let local = headers
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
                name == "localhost" || name == "127.0.0.1" || name == "[::1]"
            });
        match local {
            Some(host) => format!("{}://{host}", self.public.scheme()),
            None => self.public.portal(),
        }
    }
}
