//! The stylesheet and the one small script, compiled into the binary.

use axum::Router;
use axum::http::header;
use axum::routing::get;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/static/portal.css",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                        (header::CACHE_CONTROL, "max-age=300"),
                    ],
                    include_str!("../../static/portal.css"),
                )
            }),
        )
        .route(
            "/static/portal.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "max-age=300"),
                    ],
                    include_str!("../../static/portal.js"),
                )
            }),
        )
}
