//! How long a request may take, from its headers until its answer starts:
//! `HTTP_REQUEST_TIMEOUT_SECS` for every route, longer where a route says
//! so ([`extend`], for uploads). Reading the body counts, so a client that
//! trickles a body is answered 408 and disconnected.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

/// The deadline of the request being served, shared by [`enforce`] and the
/// routes that [`extend`] it.
#[derive(Clone)]
pub struct Deadline {
    start: Instant,
    /// Milliseconds after `start`; only ever grows.
    after_ms: Arc<AtomicU64>,
}

impl Deadline {
    fn new(timeout: Duration) -> Self {
        Self {
            start: Instant::now(),
            after_ms: Arc::new(AtomicU64::new(millis(timeout))),
        }
    }

    fn at(&self) -> Instant {
        self.start + Duration::from_millis(self.after_ms.load(Ordering::Acquire))
    }

    /// Allows the request at least `from_now` more.
    pub fn extend(&self, from_now: Duration) {
        let target = millis(self.start.elapsed() + from_now);
        self.after_ms.fetch_max(target, Ordering::AcqRel);
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The outermost request layer (state: the default timeout).
pub async fn enforce(
    State(timeout): State<Duration>,
    mut request: Request,
    next: Next,
) -> Response {
    let deadline = Deadline::new(timeout);
    request.extensions_mut().insert(deadline.clone());
    let run = next.run(request);
    tokio::pin!(run);
    loop {
        tokio::select! {
            response = &mut run => return response,
            () = tokio::time::sleep_until(deadline.at()) => {
                if deadline.at() <= Instant::now() {
                    return timed_out();
                }
            }
        }
    }
}

/// A route layer (state: the time the route needs) giving the request more
/// time than the default, such as an upload of many megabytes.
pub async fn extend(State(needed): State<Duration>, request: Request, next: Next) -> Response {
    if let Some(deadline) = request.extensions().get::<Deadline>() {
        deadline.extend(needed);
    }
    next.run(request).await
}

fn timed_out() -> Response {
    let mut response = (
        StatusCode::REQUEST_TIMEOUT,
        "the request took too long; try again\n",
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_millis(300)).await;
        "done"
    }

    fn app() -> Router {
        Router::new()
            .route("/slow", get(slow))
            .route(
                "/upload",
                get(slow).layer(axum::middleware::from_fn_with_state(
                    Duration::from_secs(5),
                    extend,
                )),
            )
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_millis(100),
                enforce,
            ))
    }

    async fn status(path: &str) -> StatusCode {
        let request = axum::http::Request::get(path).body(Body::empty());
        match request {
            Ok(request) => match app().oneshot(request).await {
                Ok(response) => response.status(),
                Err(never) => match never {},
            },
            Err(_) => StatusCode::BAD_REQUEST,
        }
    }

    #[tokio::test]
    async fn slow_requests_time_out_unless_their_route_extends_the_deadline() {
        assert_eq!(status("/slow").await, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(status("/upload").await, StatusCode::OK);
    }
}
