//! Operators (owners only), one's own API tokens, and one's second factor.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use saas_core::auth::tokens::{self, ApiToken, Owner};

use super::{Nav, render, see_other};
use crate::actions::{
    self,
    operators::{NewOperator, OperatorPatch},
};
use crate::auth::{CsrfForm, PageUser, Role, totp};
use crate::error::{Error, PageResult};
use crate::params::PageId;
use crate::repo::{self, operators::OperatorRow};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/operators", get(operators).post(create_operator))
        .route("/operators/{id}", post(update_operator))
        .route("/tokens", get(tokens_page).post(create_token))
        .route("/tokens/{id}/revoke", post(revoke_token))
        .route("/account", get(account))
        .route("/account/totp/start", post(totp_start))
        .route("/account/totp/confirm", post(totp_confirm))
        .route("/account/totp/disable", post(totp_disable))
}

#[derive(Template)]
#[template(path = "operators.html")]
struct OperatorsPage {
    nav: Nav,
    operators: Vec<OperatorRow>,
    roles: [Role; 3],
}

async fn operators(
    State(state): State<AppState>,
    PageUser(user): PageUser,
) -> PageResult<Html<String>> {
    user.require(Role::Owner)?;
    Ok(render(&OperatorsPage {
        nav: Nav::new(&user, "operators"),
        operators: repo::operators::list(&state.db).await?,
        roles: Role::ALL,
    })?)
}

async fn create_operator(
    State(state): State<AppState>,
    CsrfForm(user, form): CsrfForm,
) -> PageResult {
    let new = NewOperator {
        email: form.get("email").unwrap_or("").to_owned(),
        role: form.get("role").unwrap_or("").to_owned(),
        password: form.raw("password").unwrap_or("").to_owned(),
        display_name: form.get("display_name").unwrap_or("").to_owned(),
    };
    actions::operators::create(&state, &user, new).await?;
    Ok(see_other("/operators"))
}

async fn update_operator(
    State(state): State<AppState>,
    PageId(id): PageId,
    CsrfForm(user, form): CsrfForm,
) -> PageResult {
    let patch = OperatorPatch {
        role: form.get("role").map(str::to_owned),
        disabled: form.opt_parse("disabled", "must be true or false")?,
    };
    actions::operators::update(&state, &user, id, patch).await?;
    Ok(see_other("/operators"))
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    nav: Nav,
    tokens: Vec<ApiToken>,
    created: Option<String>,
}

async fn tokens_page(
    State(state): State<AppState>,
    PageUser(user): PageUser,
) -> PageResult<Html<String>> {
    Ok(render(&TokensPage {
        tokens: tokens::list(&state.db, Owner::Operator, user.id()).await?,
        nav: Nav::new(&user, "tokens"),
        created: None,
    })?)
}

async fn create_token(State(state): State<AppState>, CsrfForm(user, form): CsrfForm) -> PageResult {
    let (_, secret) =
        actions::operators::create_token(&state, &user, form.get("name").unwrap_or("")).await?;
    Ok(render(&TokensPage {
        tokens: tokens::list(&state.db, Owner::Operator, user.id()).await?,
        nav: Nav::new(&user, "tokens"),
        created: Some(secret),
    })?
    .into_response())
}

async fn revoke_token(
    State(state): State<AppState>,
    PageId(id): PageId,
    CsrfForm(user, _): CsrfForm,
) -> PageResult {
    actions::operators::revoke_token(&state, &user, id).await?;
    Ok(see_other("/tokens"))
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    nav: Nav,
    enabled: bool,
    /// A secret being set up: (secret, otpauth URI).
    pending: Option<(String, String)>,
    recovery_codes: Vec<String>,
    error: Option<String>,
}

fn account_page(user: &crate::auth::CurrentOperator, enabled: bool) -> AccountPage {
    AccountPage {
        nav: Nav::new(user, "account"),
        enabled,
        pending: None,
        recovery_codes: Vec::new(),
        error: None,
    }
}

async fn account(PageUser(user): PageUser) -> PageResult<Html<String>> {
    let enabled = user.operator.totp_enabled;
    Ok(render(&account_page(&user, enabled))?)
}

async fn totp_start(State(state): State<AppState>, CsrfForm(user, _): CsrfForm) -> PageResult {
    if user.operator.totp_enabled {
        return Err(Error::conflict("the second factor is already on; turn it off first").into());
    }
    let secret = totp::new_secret();
    let mut tx = state.db.begin().await?;
    repo::operators::set_pending_totp(&mut tx, user.id(), &secret).await?;
    tx.commit().await?;
    let uri = totp::otpauth_uri("odoo-saas admin", &user.operator.email, &secret);
    let mut page = account_page(&user, false);
    page.pending = Some((secret, uri));
    Ok(render(&page)?.into_response())
}

async fn totp_confirm(State(state): State<AppState>, CsrfForm(user, form): CsrfForm) -> PageResult {
    let Some(secret) = repo::operators::pending_totp(&state.db, user.id()).await? else {
        return Err(Error::conflict("start the set-up first").into());
    };
    let step = totp::matching_step(
        &secret,
        form.get("code").unwrap_or(""),
        chrono::Utc::now().timestamp(),
    );
    let claimed = match step {
        Some(step) => repo::operators::claim_totp_step(&state.db, user.id(), step).await?,
        None => false,
    };
    if !claimed {
        let uri = totp::otpauth_uri("odoo-saas admin", &user.operator.email, &secret);
        let mut page = account_page(&user, false);
        page.pending = Some((secret, uri));
        page.error = Some("That code is not valid; check the device's clock and try again.".into());
        return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response());
    }
    let codes = totp::recovery_codes();
    let hashes: Vec<String> = codes.iter().map(|c| totp::recovery_hash(c)).collect();
    let mut tx = state.db.begin().await?;
    repo::operators::enable_totp(&mut tx, user.id(), &hashes).await?;
    actions::record(
        &mut tx,
        &user,
        "operator.totp_enable",
        format!("operator:{}", user.id()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    let mut page = account_page(&user, true);
    page.recovery_codes = codes;
    Ok(render(&page)?.into_response())
}

/// Turning the second factor off takes a current code, throttled like
/// sign-in (per operator and address), and a code works only once.
async fn totp_disable(State(state): State<AppState>, CsrfForm(user, form): CsrfForm) -> PageResult {
    let secret = repo::operators::credentials(&state.db, &user.operator.email)
        .await?
        .and_then(|c| c.totp_secret);
    let Some(secret) = secret else {
        return Ok(see_other("/account"));
    };
    let checked = crate::auth::login::check_second_factor(
        &state,
        &state.second_factor,
        &user.operator,
        &secret,
        form.get("code").unwrap_or(""),
        false,
        user.address,
    )
    .await?;
    match checked {
        Err(throttled) => return Err(Error::Throttled(throttled.retry_after).into()),
        Ok(None) => {
            return Err(Error::invalid("code", "is not valid (a code works only once)").into());
        }
        Ok(Some(_)) => {}
    }
    let mut tx = state.db.begin().await?;
    repo::operators::disable_totp(&mut tx, user.id()).await?;
    actions::record(
        &mut tx,
        &user,
        "operator.totp_disable",
        format!("operator:{}", user.id()),
        serde_json::json!({}),
    )
    .await?;
    tx.commit().await?;
    Ok(see_other("/account"))
}
