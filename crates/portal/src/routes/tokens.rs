//! Web UI: API tokens, shown once, stored hashed, revocable.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use saas_core::audit;
use saas_core::auth::tokens::{self, Owner};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{SignedIn, Web};
use crate::error::{AppError, PageError};
use crate::extract::Form;
use crate::routes::instances::{nav, parse_id};
use crate::state::AppState;
use crate::views::{FormError, TokenView, TokensPage, render};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tokens", get(list).post(create))
        .route("/tokens/{id}/revoke", post(revoke))
}

async fn tokens_page(
    state: &AppState,
    who: &SignedIn,
    new_secret: Option<String>,
    error: Option<&AppError>,
) -> Result<Response, PageError> {
    let tokens = tokens::list(&state.db, Owner::Customer, who.customer.id).await?;
    let page = TokensPage {
        nav: nav(who),
        tokens: tokens.iter().map(TokenView::new).collect(),
        new_secret,
        error: error.map(FormError::from),
    };
    let status = error.map_or(axum::http::StatusCode::OK, AppError::status);
    Ok((status, render(&page)).into_response())
}

async fn list(State(state): State<AppState>, Web(who): Web) -> Result<Response, PageError> {
    tokens_page(&state, &who, None, None).await
}

/// Creates a token for the customer; returns it with its secret.
pub async fn create_token(
    state: &AppState,
    who: &SignedIn,
    name: &str,
) -> Result<(tokens::ApiToken, String), AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::invalid(
            "name",
            "give the token a name (up to 100 characters)",
        ));
    }
    let mut tx = state.db.begin().await?;
    let (token, secret) = tokens::create(&mut tx, Owner::Customer, who.customer.id, name).await?;
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: &who.actor().name,
            action: "token.create",
            target: Some(format!("token:{}", token.id)),
            address: who.address,
            details: json!({ "name": name }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((token, secret))
}

/// Revokes one of the customer's tokens; 404 for anyone else's.
pub async fn revoke_token(state: &AppState, who: &SignedIn, id: &str) -> Result<(), AppError> {
    let id = parse_id(id)?;
    let mut tx = state.db.begin().await?;
    if !tokens::revoke(&mut tx, Owner::Customer, who.customer.id, id).await? {
        return Err(AppError::NotFound);
    }
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: &who.actor().name,
            action: "token.revoke",
            target: Some(format!("token:{id}")),
            address: who.address,
            details: json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf_token: String,
    name: String,
}

async fn create(
    State(state): State<AppState>,
    Web(who): Web,
    Form(form): Form<CreateForm>,
) -> Result<Response, PageError> {
    who.check_csrf(&form.csrf_token)?;
    match create_token(&state, &who, &form.name).await {
        Ok((_, secret)) => tokens_page(&state, &who, Some(secret), None).await,
        Err(err @ AppError::Invalid { .. }) => tokens_page(&state, &who, None, Some(&err)).await,
        Err(err) => Err(err.into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CsrfForm {
    csrf_token: String,
}

async fn revoke(
    State(state): State<AppState>,
    Web(who): Web,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    who.check_csrf(&form.csrf_token)?;
    revoke_token(&state, &who, &id).await?;
    Ok(Redirect::to("/tokens").into_response())
}
