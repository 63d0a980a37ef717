//! What every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use saas_core::auth::session::SessionStore;
use saas_core::shared_redis::SharedRedis;
use sqlx::PgPool;

use crate::settings::AdminSettings;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: PgPool,
    /// Sessions, throttling, live workers, and the operations queue.
    pub redis: SharedRedis,
    pub sessions: SessionStore,
    pub settings: AdminSettings,
    /// `Secure` on cookies when the public scheme is https.
    pub secure_cookies: bool,
    pub public_scheme: String,
    pub base_domain: String,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// The operations queue, or `None` while Redis is down: the operation is
    /// stored anyway and the worker's reconciler pushes it later.
    pub async fn queue(&self) -> Option<saas_core::ops::OpsQueue> {
        match self.redis.queue().await {
            Ok(queue) => Some(queue),
            Err(err) => {
                tracing::warn!(error = %err, "operations queue unreachable; the reconciler will push");
                None
            }
        }
    }

    /// A Redis key under the platform prefix, e.g. `admin:throttle:...`.
    pub fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.redis.prefix())
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
