//! The operators' service: web UI and JSON API on `ADMIN_PORT` (5000).
//!
//! `main` stays thin: [`build`] makes the application from a validated
//! configuration and [`App::serve`] runs it on any listener, so tests start
//! it on port 0.

pub mod actions;
pub mod api;
pub mod auth;
pub mod backups;
pub mod bootstrap;
pub mod error;
pub mod filters;
pub mod pages;
pub mod params;
pub mod repo;
pub mod settings;
pub mod state;

use std::future::Future;

use axum::Router;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use saas_core::auth::session::SessionStore;
use saas_core::run::{self, SchemaPolicy};
use saas_core::shared_redis::SharedRedis;
use saas_core::{Config, StartupError};
use tokio::net::TcpListener;

pub use settings::AdminSettings;
use state::{AppState, Inner};

/// The admin application, ready to serve.
pub struct App {
    router: Router,
    metrics: Router,
    limits: saas_core::edge::HttpLimits,
}

/// Connects to PostgreSQL, applies pending migrations, creates the bootstrap
/// owner when no operator exists, and assembles the routes. Redis is not
/// touched here: admin starts (and says it is not ready) while Redis is down.
pub async fn build(config: &Config, settings: AdminSettings) -> Result<App, StartupError> {
    let base = run::start(config, SchemaPolicy::Migrate).await?;
    bootstrap::bootstrap_owner(&base.deps.db, &settings).await?;
    let outbox = saas_core::outbox::Outbox::new(
        config.mail_per_recipient_per_hour,
        &base.deps.metrics.registry,
    )
    .map_err(|err| StartupError::Internal(err.to_string()))?;
    let backups = backups::open(&settings.backup);
    if let Some(copies) = &backups {
        saas_core::backup_store::watch_readiness(
            base.deps.components.add("backup_store"),
            copies.for_readiness(),
        );
    }
    let state = AppState::new(Inner {
        backups,
        db: base.deps.db.clone(),
        redis: SharedRedis::new(base.deps.redis.clone(), &config.redis_key_prefix),
        sessions: SessionStore {
            prefix: format!("{}admin:session:", config.redis_key_prefix),
            idle: settings.session_idle,
            absolute: settings.session_absolute,
        },
        secure_cookies: config.public_scheme == "https",
        public_scheme: config.public_scheme.clone(),
        base_domain: config.base_domain.clone(),
        public: config.public_urls(),
        sealing: config.sealing_key(),
        token_cache: Default::default(),
        trusted_proxies: config.trusted_proxies.clone(),
        sign_in: saas_core::auth::signin::SignInThrottle::new(
            format!("{}admin:signin:", config.redis_key_prefix),
            auth::login::SIGN_IN_LIMITS,
        ),
        second_factor: saas_core::auth::signin::SignInThrottle::new(
            format!("{}admin:second-factor:", config.redis_key_prefix),
            auth::login::SIGN_IN_LIMITS,
        ),
        outbox,
        token_failures: config.api_token_failures,
        settings,
    });
    let routes = Router::new()
        .merge(auth::login::router())
        .merge(api::router())
        .merge(pages::router())
        .fallback(not_found)
        .with_state(state);
    let router = base.router(routes);
    Ok(App {
        router,
        metrics: base.metrics_router(),
        limits: config.http,
    })
}

/// Unknown paths: JSON under `/api`, a page elsewhere.
async fn not_found(uri: Uri) -> Response {
    let err = error::Error::NotFound("page");
    if uri.path().starts_with("/api/") {
        err.into_response()
    } else {
        error::PageError(err).into_response()
    }
}

impl App {
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// What the internal metrics listener serves (`/metrics`, health).
    pub fn metrics_router(&self) -> Router {
        self.metrics.clone()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        saas_core::service::serve(listener, self.router, self.limits, shutdown).await
    }
}
