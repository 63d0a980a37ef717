//! The portal's routes: each feature module exports `router()`.

mod accounts;
mod api;
mod api_domains;
mod assets;
mod backups;
mod instances;
mod openapi;
mod tokens;

use axum::Router;

use crate::error::{AppError, PageError};
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(accounts::router())
        .merge(instances::router(&state))
        .merge(backups::router())
        .merge(tokens::router())
        .merge(api::router(&state))
        .merge(openapi::router())
        .merge(assets::router())
        .fallback(not_found)
        .with_state(state)
}

/// JSON for API paths, a page for everything else.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with("/api/") {
        AppError::NotFound.into_response()
    } else {
        PageError(AppError::NotFound).into_response()
    }
}
