//! What every handler shares.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use redis::aio::ConnectionManager;
use saas_core::auth::session::SessionStore;
use saas_core::auth::throttle;
use saas_core::ops::OpsQueue;
use saas_core::shared_redis::SharedRedis;
use sqlx::PgPool;

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

    /// Counts an attempt against `what:key`; 429 once over `limit` per `window`.
    pub async fn throttle(
        &self,
        what: &str,
        key: &str,
        limit: u32,
        window: Duration,
    ) -> Result<(), AppError> {
        let mut conn = self.redis().await?;
        let name = format!(
            "{}portal:throttle:{what}:{}",
            self.redis.prefix(),
            saas_core::auth::sha256_hex(key)
        );
        throttle::hit(&mut conn, &name, limit, window)
            .await?
            .map_err(|t| AppError::Throttled(t.retry_after))
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

/// The client's address: the peer, or `X-Real-IP` set by nginx when the peer
/// is a proxy on a loopback or private address.
pub fn client_address(peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let proxied = peer.is_some_and(|ip| match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local(),
    });
    if proxied
        && let Some(real) = headers
            .get("x-real-ip")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    {
        return Some(real);
    }
    peer
}
