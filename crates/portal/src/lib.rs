//! The customers' service: self-service web UI and JSON API on `PORTAL_PORT` (5001).
//!
//! `main` stays thin: [`build`] makes the application from a validated
//! configuration and [`App::serve`] runs it on any listener, so tests start
//! it on port 0.

mod actions;
mod auth;
mod domains;
mod error;
mod extract;
mod mail;
mod routes;
pub mod settings;
mod state;
mod store;
mod upload;
mod views;

use std::future::Future;

use axum::Router;
use saas_core::auth::session::SessionStore;
use saas_core::run::{self, SchemaPolicy};
use saas_core::shared_redis::SharedRedis;
use saas_core::{Config, Env, StartupError};
use tokio::net::TcpListener;

pub use settings::PortalSettings;

/// The portal application, ready to serve.
pub struct App {
    router: Router,
    metrics: Router,
    limits: saas_core::edge::HttpLimits,
}

/// Reads the portal's own settings from the process environment; on failure
/// prints the one-line reason and returns exit status 2.
pub fn settings_from_process() -> Result<PortalSettings, std::process::ExitCode> {
    PortalSettings::from_env(&Env::from_process()).map_err(|err| {
        eprintln!("{err}");
        std::process::ExitCode::from(2)
    })
}

/// Connects to PostgreSQL, waits until admin has migrated the schema and
/// assembles the routes, with the portal's settings from the process
/// environment.
pub async fn build(config: &Config) -> Result<App, StartupError> {
    let settings = PortalSettings::from_env(&Env::from_process())?;
    build_with(config, settings).await
}

/// [`build`] with settings already read. Redis is not contacted here: the
/// portal serves `/healthz` (and reports itself not ready) while Redis is down.
pub async fn build_with(config: &Config, settings: PortalSettings) -> Result<App, StartupError> {
    let base = run::start(config, SchemaPolicy::Wait).await?;
    let outbox = saas_core::outbox::Outbox::new(
        config.mail_per_recipient_per_hour,
        &base.deps.metrics.registry,
    )
    .map_err(|err| StartupError::Internal(err.to_string()))?;
    let mailer = mail::Mailer::new(&settings, outbox).map_err(StartupError::Internal)?;
    mailer.spawn_sender(base.deps.db.clone());
    let backups = match store::BackupObjects::open(&settings.backup) {
        Ok(store) => {
            saas_core::backup_store::watch_readiness(
                base.deps.components.add("backup_store"),
                store.copies().for_readiness(),
            );
            Some(store)
        }
        Err(reason) => {
            tracing::error!(%reason, "backup storage (BACKUP_STORE_URL) cannot be opened; downloads and uploads answer 503");
            None
        }
    };
    let redis = SharedRedis::new(base.deps.redis.clone(), &config.redis_key_prefix);
    let sessions = SessionStore {
        prefix: format!("{}portal:session:", config.redis_key_prefix),
        idle: settings.session_idle,
        absolute: settings.session_absolute,
    };
    let state = state::AppState::new(state::Inner {
        db: base.deps.db.clone(),
        redis,
        sessions,
        mailer,
        backups,
        base_domain: config.base_domain.clone(),
        public: config.public_urls(),
        sealing: config.sealing_key(),
        secure_cookies: config.public_scheme == "https",
        trusted_proxies: config.trusted_proxies.clone(),
        sign_in: saas_core::auth::signin::SignInThrottle::new(
            format!("{}portal:signin:", config.redis_key_prefix),
            auth::SIGN_IN_LIMITS,
        ),
        token_failures: config.api_token_failures,
        settings,
    });
    let router = base.router(routes::router(state));
    Ok(App {
        router,
        metrics: base.metrics_router(),
        limits: config.http,
    })
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
