//! What every service shares: health endpoints, request tracing, metrics
//! layers, listening, and graceful shutdown.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::edge::HttpLimits;
use crate::error_chain::Chain;
use crate::readiness::Components;
use crate::startup::StartupError;
use crate::telemetry::{HttpMetrics, Metrics, track_http};

/// How long graceful shutdown may wait for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(9);
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Handles to the platform's dependencies, checked by `/readyz`.
#[derive(Clone)]
pub struct Dependencies {
    pub db: PgPool,
    pub redis: redis::Client,
    pub metrics: Metrics,
    /// Parts of the service that report their own readiness (the worker's
    /// queue consumer); `/readyz` fails while one of them is down.
    pub components: Components,
}

impl Dependencies {
    /// Opens the Redis client (no connection yet: readiness reports it) and
    /// registers the shared metrics.
    pub fn new(config: &Config, db: PgPool) -> Result<Self, StartupError> {
        let redis = redis::Client::open(config.redis_url.expose_secret()).map_err(|err| {
            StartupError::RedisUnreachable {
                endpoint: config.redis_endpoint(),
                reason: crate::error_chain::chain(&err),
            }
        })?;
        let metrics = Metrics::new().map_err(|err| StartupError::Internal(err.to_string()))?;
        Ok(Self {
            db,
            redis,
            metrics,
            components: Components::default(),
        })
    }

    /// Checks PostgreSQL and Redis, each bounded, and updates the gauges.
    pub async fn readiness(&self) -> Readiness {
        let components = async {
            let mut checked = Vec::new();
            for component in self.components.all() {
                checked.push((component.name(), component.check(CHECK_TIMEOUT).await));
            }
            checked
        };
        let (postgres, redis, components) =
            tokio::join!(self.check_postgres(), self.check_redis(), components);
        let readiness = Readiness {
            postgres,
            redis,
            components,
        };
        self.metrics
            .dependency_up
            .with_label_values(&["postgres"])
            .set(f64::from(u8::from(readiness.postgres.is_ok())));
        self.metrics
            .dependency_up
            .with_label_values(&["redis"])
            .set(f64::from(u8::from(readiness.redis.is_ok())));
        self.metrics
            .service_ready
            .set(f64::from(u8::from(readiness.is_ready())));
        readiness
    }

    async fn check_postgres(&self) -> Result<(), String> {
        let query = sqlx::query("SELECT 1").execute(&self.db);
        match tokio::time::timeout(CHECK_TIMEOUT, query).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(crate::error_chain::chain(&err)),
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        }
    }

    async fn check_redis(&self) -> Result<(), String> {
        let ping = async {
            let mut conn = self.redis.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await
        };
        match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(crate::error_chain::chain(&err)),
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        }
    }

    /// Keeps the readiness gauges fresh for Prometheus between probes.
    pub fn spawn_readiness_refresh(&self) -> tokio::task::JoinHandle<()> {
        let deps = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(15));
            loop {
                tick.tick().await;
                deps.readiness().await;
            }
        })
    }
}

/// The outcome of one readiness check.
pub struct Readiness {
    pub postgres: Result<(), String>,
    pub redis: Result<(), String>,
    /// The service's own components, by name.
    pub components: Vec<(&'static str, Result<(), String>)>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.checks().all(|(_, check)| check.is_ok())
    }

    fn checks(&self) -> impl Iterator<Item = (&'static str, &Result<(), String>)> {
        [("postgres", &self.postgres), ("redis", &self.redis)]
            .into_iter()
            .chain(self.components.iter().map(|(name, check)| (*name, check)))
    }
}

impl IntoResponse for Readiness {
    fn into_response(self) -> Response {
        let describe = |check: &Result<(), String>| match check {
            Ok(()) => json!({ "ok": true }),
            Err(reason) => json!({ "ok": false, "error": reason }),
        };
        let failed: Vec<&str> = self
            .checks()
            .filter(|(_, check)| check.is_err())
            .map(|(name, _)| name)
            .collect();
        let checks: serde_json::Map<String, serde_json::Value> = self
            .checks()
            .map(|(name, check)| (name.to_owned(), describe(check)))
            .collect();
        let status = if failed.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let body = json!({
            "status": if failed.is_empty() { "ready" } else { "unavailable" },
            "failed": failed,
            "checks": checks,
        });
        (status, axum::Json(body)).into_response()
    }
}

/// `/healthz` and `/readyz`, on every listener.
pub fn ops_router(deps: Dependencies) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(deps)
}

/// `/metrics`: on admin's and portal's internal `METRICS_PORT` only, never
/// on their public port; on the worker's own port (it has no public one).
pub fn metrics_router(deps: Dependencies) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(deps)
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({ "status": "alive" }))
}

async fn readyz(State(deps): State<Dependencies>) -> Readiness {
    deps.readiness().await
}

async fn metrics(State(deps): State<Dependencies>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        deps.metrics.render(),
    )
}

/// What the edge layers need from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct EdgeLayers {
    /// `HTTP_REQUEST_TIMEOUT_SECS`.
    pub request_timeout: Duration,
    /// `Strict-Transport-Security` on every answer (`PUBLIC_SCHEME=https`).
    pub hsts: bool,
}

impl EdgeLayers {
    pub fn from_config(config: &Config) -> Self {
        Self {
            request_timeout: config.http.request_timeout,
            hsts: config.public_scheme == "https",
        }
    }
}

/// Applies the layers every HTTP service has, once, at the root: the
/// request timeout (innermost, so routes can extend it), security headers,
/// request metrics by matched route, tracing spans with the request id, and
/// an `x-request-id` header on every response.
pub fn with_common_layers(router: Router, http_metrics: HttpMetrics, edge: EdgeLayers) -> Router {
    router
        .layer(axum::middleware::from_fn_with_state(
            edge.request_timeout,
            crate::edge::timeout::enforce,
        ))
        .layer(axum::middleware::from_fn_with_state(
            crate::edge::headers::Hsts(edge.hsts),
            crate::edge::headers::security_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            http_metrics,
            track_http,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str);
                let request_id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!("request", method = %request.method(), route, request_id)
            }),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Binds the service's address, naming the port variable on failure.
pub async fn bind(config: &Config) -> Result<TcpListener, StartupError> {
    TcpListener::bind((config.bind_addr, config.port))
        .await
        .map_err(|err| StartupError::from_bind(config, &err))
}

/// Binds the internal metrics address (`METRICS_PORT`).
pub async fn bind_metrics(config: &Config) -> Result<TcpListener, StartupError> {
    TcpListener::bind((config.bind_addr, config.metrics_port))
        .await
        .map_err(|err| {
            StartupError::from_bind_port(config, "METRICS_PORT", config.metrics_port, &err)
        })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %Chain(&err), "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %Chain(&err), "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// Serves `router` within `limits` (header, idle and request timeouts, the
/// connection cap) until `shutdown` resolves, then lets in-flight requests
/// finish for at most [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::edge::server::serve(listener, router, limits, SHUTDOWN_GRACE, shutdown).await
}
