//! The operators' service: web UI and JSON API on `ADMIN_PORT` (5000).
//!
//! `main` stays thin: [`build`] makes the application from a validated
//! configuration and [`App::serve`] runs it on any listener, so tests start
//! it on port 0.

use std::future::Future;

use axum::Router;
use saas_core::run::{self, SchemaPolicy};
use saas_core::{Config, StartupError};
use tokio::net::TcpListener;

/// The admin application, ready to serve.
pub struct App {
    router: Router,
}

/// Connects to PostgreSQL, applies pending migrations and assembles the routes.
pub async fn build(config: &Config) -> Result<App, StartupError> {
    let base = run::start(config, SchemaPolicy::Migrate).await?;
    let router = base.router(Router::new());
    Ok(App { router })
}

impl App {
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        saas_core::service::serve(listener, self.router, shutdown).await
    }
}
