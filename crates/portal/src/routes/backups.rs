//! Web UI: download and restore one backup (owner only).

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::actions;
use crate::auth::{SignedIn, Web};
use crate::error::{AppError, PageError};
use crate::extract::Form;
use crate::routes::instances::{page, parse_id};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/backups/{id}/download", get(download))
        .route("/backups/{id}/restore", post(restore))
}

/// Streams a backup zip from object storage as an attachment.
pub async fn stream_backup(
    state: &AppState,
    who: &SignedIn,
    id: &str,
) -> Result<Response, AppError> {
    let backup = actions::backup(state, who, parse_id(id)?).await?;
    let tenant = actions::instance(state, who, backup.tenant_id, true).await?;
    let stream = state
        .backups()?
        .open_stream(&backup.object_key, &backup.sha256)
        .await?;
    let size = backup.size_bytes;
    let filename = format!(
        "{}-{}-{}.zip",
        tenant.subdomain,
        backup.created_at.format("%Y%m%dT%H%M%SZ"),
        backup.kind
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn download(
    State(state): State<AppState>,
    Web(who): Web,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    Ok(stream_backup(&state, &who, &id).await?)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RestoreForm {
    csrf_token: String,
    confirm: String,
}

async fn restore(
    State(state): State<AppState>,
    Web(who): Web,
    Path(id): Path<String>,
    Form(form): Form<RestoreForm>,
) -> Result<Response, PageError> {
    who.check_csrf(&form.csrf_token)?;
    let backup = actions::backup(&state, &who, parse_id(&id)?).await?;
    let tenant = actions::instance(&state, &who, backup.tenant_id, false).await?;
    match actions::restore(&state, &who, &tenant, &backup, &form.confirm).await {
        Ok(_) => {
            Ok(Redirect::to(&format!("/instances/{}?done=restore", tenant.id)).into_response())
        }
        Err(err @ (AppError::Invalid { .. } | AppError::Conflict { .. })) => {
            page(&state, &who, &tenant, Some(&err), None).await
        }
        Err(err) => Err(err.into()),
    }
}
