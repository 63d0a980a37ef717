//! What every handler shares.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use saas_core::auth::session::SessionStore;
use saas_core::auth::signin::SignInThrottle;
use saas_core::shared_redis::SharedRedis;
use sqlx::PgPool;

use crate::repo::operators::OperatorRow;
use crate::settings::AdminSettings;
use saas_core::error_chain::Chain;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: PgPool,
    /// Sessions, throttling, live workers, and the operations queue.
    pub redis: SharedRedis,
    pub sessions: SessionStore,
    pub settings: AdminSettings,
    /// The backup stores downloads stream from; `None` (downloads answer
    /// 503) when they cannot be opened here.
    pub backups: Option<saas_core::backup_store::BackupCopies>,
    /// `Secure` on cookies when the public scheme is https.
    pub secure_cookies: bool,
    pub public_scheme: String,
    pub base_domain: String,
    /// Every public URL admin links to (`PUBLIC_PORT` included).
    pub public: saas_core::public_url::PublicUrls,
    /// Seals the Odoo admin passwords of tenants operators create.
    pub sealing: saas_core::sealing::SealingKey,
    /// API tokens recently checked, so a busy client costs one query per
    /// request, not two. Cleared on every token or operator change here;
    /// another admin process sees a revocation within [`TOKEN_CACHE_TTL`].
    pub token_cache: Mutex<HashMap<String, (Instant, OperatorRow)>>,
    /// Proxies whose forwarded headers name the client (`TRUSTED_PROXIES`).
    pub trusted_proxies: saas_core::edge::TrustedProxies,
    /// Password sign-in throttling.
    pub sign_in: SignInThrottle,
    /// Second-factor throttling (the code after the password, and turning
    /// the second factor off), keyed by operator.
    pub second_factor: SignInThrottle,
    /// Where notices to operators go (admin sends no mail itself: the
    /// portal's sender delivers the outbox), within the per-recipient limit.
    pub outbox: saas_core::outbox::Outbox,
    /// Failed bearer tokens per client address and 15 minutes (`API_BEARER_FAILURES`).
    pub token_failures: u32,
}

/// How long a checked API token is trusted without asking PostgreSQL.
pub const TOKEN_CACHE_TTL: Duration = Duration::from_secs(2);
const TOKEN_CACHE_MAX: usize = 10_000;

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
                tracing::warn!(error = %Chain(&err), "operations queue unreachable; the reconciler will push");
                None
            }
        }
    }

    /// The operator of a token checked within the last [`TOKEN_CACHE_TTL`].
    pub fn cached_token(&self, hash: &str) -> Option<OperatorRow> {
        let cache = self.token_cache.lock().ok()?;
        cache
            .get(hash)
            .filter(|(at, _)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(_, row)| row.clone())
    }

    pub fn cache_token(&self, hash: String, row: OperatorRow) {
        if let Ok(mut cache) = self.token_cache.lock() {
            if cache.len() >= TOKEN_CACHE_MAX {
                cache.clear();
            }
            cache.insert(hash, (Instant::now(), row));
        }
    }

    /// Forgets every cached token (after a revocation or an operator change).
    pub fn forget_tokens(&self) {
        if let Ok(mut cache) = self.token_cache.lock() {
            cache.clear();
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
