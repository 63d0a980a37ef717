//! Signing in and out: the login form (CSRF by double submit), throttling per
//! account and per address, the optional second factor, and logout.

use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use saas_core::audit;
use saas_core::auth::{constant_time_eq, password, random_token, sha256_hex, throttle};
use secrecy::SecretString;

use super::{
    CSRF_FIELD, CsrfForm, LOGIN_CSRF_COOKIE, SESSION_COOKIE, client_address, cookie, load_session,
    set_cookie, totp,
};
use crate::error::{Error, PageResult};
use crate::pages::{self, LoginPage, MfaPage};
use crate::params::FormParams;
use crate::repo::operators;
use crate::state::AppState;

/// Failed or not, attempts allowed per account and per address in a window.
pub const ACCOUNT_LIMIT: u32 = 5;
pub const ADDRESS_LIMIT: u32 = 30;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/login/mfa", get(mfa_form).post(mfa))
        .route("/logout", axum::routing::post(logout))
}

/// The request's address, as an extractor.
pub struct Address(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Address {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Address(client_address(parts)))
    }
}

fn login_page(
    token: &str,
    email: &str,
    error: Option<String>,
) -> PageResult<axum::response::Html<String>> {
    Ok(pages::render(&LoginPage {
        csrf: token.to_owned(),
        email: email.to_owned(),
        error,
    })?)
}

async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    if let Ok(Some((_, session))) = load_session(&state, &headers).await
        && session.mfa_passed
    {
        return Ok(Redirect::to("/").into_response());
    }
    let token = random_token(16);
    let page = login_page(&token, "", None)?;
    Ok((
        [(
            header::SET_COOKIE,
            set_cookie(&state, LOGIN_CSRF_COOKIE, &token, Some(3600)),
        )],
        page,
    )
        .into_response())
}

async fn login(
    State(state): State<AppState>,
    Address(address): Address,
    headers: HeaderMap,
    FormParams(form): FormParams,
) -> PageResult {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    let sent = form.raw(CSRF_FIELD).unwrap_or("");
    if expected.is_empty() || !constant_time_eq(expected, sent) {
        return Err(Error::Csrf.into());
    }
    let email = form.get("email").unwrap_or("").to_lowercase();
    let secret = form.raw("password").unwrap_or("").to_owned();
    let refuse = |status: StatusCode, message: String, retry: Option<Duration>| -> PageResult {
        let mut response = (status, login_page(expected, &email, Some(message))?).into_response();
        if let Some(after) = retry
            && let Ok(value) = after.as_secs().max(1).to_string().parse()
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        Ok(response)
    };
    if email.is_empty()
        || email.len() > 254
        || secret.is_empty()
        || secret.len() > password::MAX_LENGTH
    {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Enter your email and password.".into(),
            None,
        );
    }
    let mut conn = state.redis.conn().await?;
    let account_key = state.key(&format!("admin:login:account:{}", sha256_hex(&email)));
    let address_key = state.key(&format!(
        "admin:login:address:{}",
        address.map(|a| a.to_string()).unwrap_or_default()
    ));
    for (key, limit) in [(&address_key, ADDRESS_LIMIT), (&account_key, ACCOUNT_LIMIT)] {
        if let Err(throttled) = throttle::hit(&mut conn, key, limit, WINDOW).await? {
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many attempts. Try again in {} minutes.",
                    throttled.retry_after.as_secs().div_ceil(60)
                ),
                Some(throttled.retry_after),
            );
        }
    }
    let credentials = operators::credentials(&state.db, &email).await?;
    let hash = match &credentials {
        Some(c) if !c.operator.disabled => c.password_hash.clone(),
        _ => password::dummy_hash().await,
    };
    let verified = password::verify(SecretString::from(secret), hash).await;
    let Some(credentials) = credentials.filter(|c| verified && !c.operator.disabled) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Wrong email or password.".into(),
            None,
        );
    };
    throttle::reset(&mut conn, &account_key).await?;
    let needs_mfa = credentials.totp_secret.is_some();
    let (token, _) = state
        .sessions
        .create(&mut conn, credentials.operator.id, !needs_mfa)
        .await?;
    let mut tx = state.db.begin().await?;
    operators::record_login(&mut tx, credentials.operator.id).await?;
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: &format!("operator:{}", credentials.operator.email),
            action: if needs_mfa {
                "operator.login_password"
            } else {
                "operator.login"
            },
            target: Some(format!("operator:{}", credentials.operator.id)),
            address,
            details: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    let next = if needs_mfa { "/login/mfa" } else { "/" };
    Ok((
        [(
            header::SET_COOKIE,
            set_cookie(&state, SESSION_COOKIE, &token, None),
        )],
        Redirect::to(next),
    )
        .into_response())
}

async fn mfa_form(State(state): State<AppState>, headers: HeaderMap) -> PageResult {
    match load_session(&state, &headers).await? {
        Some((_, session)) if !session.mfa_passed => Ok(pages::render(&MfaPage {
            csrf: session.csrf_token,
            error: None,
        })?
        .into_response()),
        Some(_) => Ok(Redirect::to("/").into_response()),
        None => Ok(Redirect::to("/login").into_response()),
    }
}

async fn mfa(
    State(state): State<AppState>,
    Address(address): Address,
    headers: HeaderMap,
    FormParams(form): FormParams,
) -> PageResult {
    let Some((token, mut session)) = load_session(&state, &headers).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let sent = form.raw(CSRF_FIELD).unwrap_or("");
    if !constant_time_eq(sent, &session.csrf_token) {
        return Err(Error::Csrf.into());
    }
    let mut conn = state.redis.conn().await?;
    let key = state.key(&format!("admin:login:mfa:{}", session.user_id));
    if let Err(throttled) = throttle::hit(&mut conn, &key, ACCOUNT_LIMIT, WINDOW).await? {
        return Err(Error::Throttled(throttled.retry_after).into());
    }
    let Some(operator) = operators::get(&state.db, session.user_id).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let code = form.get("code").unwrap_or("");
    let secret = operators::credentials(&state.db, &operator.email)
        .await?
        .and_then(|c| c.totp_secret);
    let by_code = secret
        .as_deref()
        .is_some_and(|s| totp::verify(s, code, chrono::Utc::now().timestamp()));
    let by_recovery = !by_code
        && !code.is_empty()
        && operators::use_recovery_code(&state.db, operator.id, &totp::recovery_hash(code)).await?;
    if !by_code && !by_recovery {
        let page = pages::render(&MfaPage {
            csrf: session.csrf_token,
            error: Some("That code is not valid.".into()),
        })?;
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    }
    throttle::reset(&mut conn, &key).await?;
    session.mfa_passed = true;
    state.sessions.save(&mut conn, &token, &session).await?;
    let mut tx = state.db.begin().await?;
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: &format!("operator:{}", operator.email),
            action: "operator.login",
            target: Some(format!("operator:{}", operator.id)),
            address,
            details: serde_json::json!({ "second_factor": if by_code { "totp" } else { "recovery_code" } }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Redirect::to("/").into_response())
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    CsrfForm(user, _): CsrfForm,
) -> PageResult {
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        let mut conn = state.redis.conn().await?;
        state.sessions.destroy(&mut conn, token).await?;
    }
    let mut tx = state.db.begin().await?;
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: &user.actor().name,
            action: "operator.logout",
            target: Some(format!("operator:{}", user.id())),
            address: user.address,
            details: serde_json::json!({}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok((
        [(
            header::SET_COOKIE,
            set_cookie(&state, SESSION_COOKIE, "", Some(0)),
        )],
        Redirect::to("/login"),
    )
        .into_response())
}
