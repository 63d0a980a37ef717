//! The few lines every `main` shares: read the configuration, start the
//! runtime, print a start-up failure as one line and exit with its status.

use std::future::Future;
use std::process::ExitCode;

use axum::Router;

use crate::config::{Config, Env, Service};
use crate::db;
use crate::error_chain::Chain;
use crate::service::{self, Dependencies};
use crate::startup::StartupError;
use crate::telemetry::{self, HttpMetrics};

/// Reads the configuration of `service` from the environment; on failure
/// prints the one-line reason on stderr and returns exit status 2.
pub fn config(service: Service) -> Result<Config, ExitCode> {
    Config::from_env(service, &Env::from_process()).map_err(|err| {
        eprintln!("{err}");
        ExitCode::from(2)
    })
}

/// Runs `body` on a multi-threaded runtime with tracing set up; a start-up
/// error is printed as one line and decides the exit status.
pub fn block_on<F>(config: &Config, body: F) -> ExitCode
where
    F: Future<Output = Result<(), StartupError>>,
{
    telemetry::init_tracing(config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(body) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %Chain(&err), "start-up failed");
            eprintln!("error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// What to do about the schema before serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaPolicy {
    /// Apply pending migrations (admin).
    Migrate,
    /// Wait, bounded, until admin has applied them (portal, worker).
    Wait,
}

/// Connects to PostgreSQL, settles the schema, and sets up the shared
/// dependencies and metrics of an HTTP service.
pub async fn start(config: &Config, schema: SchemaPolicy) -> Result<Base, StartupError> {
    let pool = db::connect(config).await?;
    match schema {
        SchemaPolicy::Migrate => db::migrate(&pool).await?,
        SchemaPolicy::Wait => db::wait_for_schema(config, &pool).await?,
    }
    let deps = Dependencies::new(config, pool)?;
    let http_metrics = HttpMetrics::register(&deps.metrics.registry)
        .map_err(|err| StartupError::Internal(err.to_string()))?;
    let readiness = deps.readiness().await;
    if let Err(reason) = &readiness.redis {
        tracing::warn!(endpoint = %config.redis_endpoint(), %reason, "Redis is not reachable yet (REDIS_URL); /readyz reports it");
    }
    deps.spawn_readiness_refresh();
    Ok(Base {
        deps,
        http_metrics,
        edge: service::EdgeLayers::from_config(config),
    })
}

/// The started dependencies of a service.
pub struct Base {
    pub deps: Dependencies,
    pub http_metrics: HttpMetrics,
    pub edge: service::EdgeLayers,
}

impl Base {
    /// The service's own routes plus `/healthz` and `/readyz`, with the
    /// common layers applied once. `/metrics` is not among them: see
    /// [`Base::metrics_router`].
    pub fn router(&self, routes: Router) -> Router {
        let router = routes.merge(service::ops_router(self.deps.clone()));
        service::with_common_layers(router, self.http_metrics.clone(), self.edge)
    }

    /// `/metrics` (and `/healthz`, `/readyz`) for the internal listener,
    /// with the common layers.
    pub fn metrics_router(&self) -> Router {
        let router = service::metrics_router(self.deps.clone())
            .merge(service::ops_router(self.deps.clone()));
        service::with_common_layers(router, self.http_metrics.clone(), self.edge)
    }
}

/// Binds the public port and the internal metrics port, logs where the
/// service listens, and serves both until SIGTERM/SIGINT.
pub async fn serve_until_signal(
    config: &Config,
    router: Router,
    metrics: Router,
) -> Result<(), StartupError> {
    let listener = service::bind(config).await?;
    let metrics_listener = service::bind_metrics(config).await?;
    tracing::info!(
        service = config.service.name(),
        address = %format!("{}:{}", config.bind_addr, config.port),
        metrics = %format!("{}:{}", config.bind_addr, config.metrics_port),
        "listening"
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut metrics_stopped = stopped.clone();
    let metrics_server = tokio::spawn(service::serve(
        metrics_listener,
        metrics,
        config.http,
        async move {
            let _ = metrics_stopped.wait_for(|s| *s).await;
        },
    ));
    let served = service::serve(listener, router, config.http, service::shutdown_signal()).await;
    let _ = stop.send(true);
    match metrics_server.await {
        Ok(Err(err)) => tracing::warn!(error = %Chain(&err), "the metrics listener failed"),
        Err(err) => tracing::warn!(error = %Chain(&err), "the metrics listener panicked"),
        Ok(Ok(())) => {}
    }
    served.map_err(|err| StartupError::from_bind(config, &err))?;
    tracing::info!(service = config.service.name(), "stopped");
    Ok(())
}
