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
use saas_core::auth::signin::{self, SignInLimits, SignInThrottle};
use saas_core::auth::throttle::Throttled;
use saas_core::auth::{constant_time_eq, password, random_token};
use secrecy::SecretString;

use super::{
    CSRF_FIELD, CsrfForm, LOGIN_CSRF_COOKIE, SESSION_COOKIE, client_address, load_session,
    own_cookie, set_cookie, totp,
};
use crate::error::{Error, PageResult};
use crate::pages::{self, LoginPage, MfaPage};
use crate::params::FormParams;
use crate::repo::operators;
use crate::state::AppState;

/// Sign-in limits per 15 minutes: 5 attempts per (account, address) and 30
/// per address; from 10 failures on an account every attempt on it is
/// slowed (growing delays) and the operator is mailed; 100 failures from
/// all addresses refuse it until the window ends. The second factor (the
/// code after the password, and turning it off) has the same limits,
/// counted per operator.
pub const SIGN_IN_LIMITS: SignInLimits = SignInLimits {
    per_pair: 5,
    per_address: 30,
    per_account: 100,
    slow_after: 10,
    notify_after: 10,
    window: Duration::from_secs(15 * 60),
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/login/mfa", get(mfa_form).post(mfa))
        .route("/logout", axum::routing::post(logout))
}

/// The request's address, as an extractor.
pub struct Address(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for Address {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Address(client_address(state, parts)))
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
    let expected = own_cookie(&state, &headers, LOGIN_CSRF_COOKIE).unwrap_or("");
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
    let delay = match state.sign_in.admit(&mut conn, &email, address).await? {
        Ok(delay) => delay,
        Err(throttled) => return refuse_throttled(refuse, throttled),
    };
    // An account under attack: every attempt on it waits, the owner's too.
    tokio::time::sleep(delay).await;
    let credentials = operators::credentials(&state.db, &email).await?;
    let hash = match &credentials {
        Some(c) if !c.operator.disabled => c.password_hash.clone(),
        _ => password::dummy_hash().await?,
    };
    let verified = password::verify(SecretString::from(secret), hash).await?;
    let Some(credentials) = credentials.filter(|c| verified && !c.operator.disabled) else {
        let failure = state.sign_in.failed(&mut conn, &email).await?;
        if failure.tell_owner
            && let Some(operator) = operators::by_email(&state.db, &email).await?
            && !operator.disabled
        {
            tell_owner_of_attack(&state, &operator, failure.failures, address, "sign-in").await?;
        }
        return refuse(
            StatusCode::UNAUTHORIZED,
            "Wrong email or password.".into(),
            None,
        );
    };
    state.sign_in.succeeded(&mut conn, &email, address).await?;
    // Signing in again in this browser ends the session it replaces.
    if let Some(replaced) = own_cookie(&state, &headers, SESSION_COOKIE) {
        state.sessions.destroy(&mut conn, replaced).await?;
    }
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

fn refuse_throttled(
    refuse: impl FnOnce(StatusCode, String, Option<Duration>) -> PageResult,
    throttled: Throttled,
) -> PageResult {
    refuse(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "Too many attempts. Try again in {} minutes.",
            throttled.retry_after.as_secs().div_ceil(60)
        ),
        Some(throttled.retry_after),
    )
}

/// Tells an operator that their account collects failed sign-ins (once
/// per throttle window): an email in the outbox (the portal's sender
/// delivers it; past the recipient's hourly share it is dropped), and an
/// audit entry.
pub async fn tell_owner_of_attack(
    state: &AppState,
    operator: &operators::OperatorRow,
    failures: u32,
    address: Option<std::net::IpAddr>,
    what: &str,
) -> Result<(), Error> {
    let (subject, body) = signin::attack_notice("admin", failures, SIGN_IN_LIMITS.window, None);
    let mut tx = state.db.begin().await?;
    state
        .outbox
        .enqueue(
            &mut tx,
            &saas_core::outbox::NewEmail {
                to: &operator.email,
                subject: &subject,
                body_text: &body,
                purpose: "sign_in_attack",
            },
        )
        .await?;
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: "system:admin",
            action: "operator.sign_in_attacked",
            target: Some(format!("operator:{}", operator.id)),
            address,
            details: serde_json::json!({ "failures": failures, "form": what }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Checks a second-factor code of `operator` under `throttle` (counted per
/// operator and address): a TOTP code whose time step is later than every
/// one used before (a code works once), or an unused recovery code when
/// `recovery` allows it. `Err` when throttled.
pub async fn check_second_factor(
    state: &AppState,
    throttle: &SignInThrottle,
    operator: &operators::OperatorRow,
    secret: &str,
    code: &str,
    recovery: bool,
    address: Option<std::net::IpAddr>,
) -> Result<Result<Option<&'static str>, Throttled>, Error> {
    let mut conn = state.redis.conn().await?;
    let account = operator.id.to_string();
    let delay = match throttle.admit(&mut conn, &account, address).await? {
        Ok(delay) => delay,
        Err(throttled) => return Ok(Err(throttled)),
    };
    tokio::time::sleep(delay).await;
    let step = totp::matching_step(secret, code, chrono::Utc::now().timestamp());
    let by_code = match step {
        Some(step) => operators::claim_totp_step(&state.db, operator.id, step).await?,
        None => false,
    };
    let by_recovery = !by_code
        && recovery
        && !code.is_empty()
        && operators::use_recovery_code(&state.db, operator.id, &totp::recovery_hash(code)).await?;
    if !by_code && !by_recovery {
        let failure = throttle.failed(&mut conn, &account).await?;
        if failure.tell_owner {
            tell_owner_of_attack(state, operator, failure.failures, address, "second factor")
                .await?;
        }
        return Ok(Ok(None));
    }
    throttle.succeeded(&mut conn, &account, address).await?;
    Ok(Ok(Some(if by_code { "totp" } else { "recovery_code" })))
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
    let Some(operator) = operators::get(&state.db, session.user_id).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let code = form.get("code").unwrap_or("");
    let secret = operators::credentials(&state.db, &operator.email)
        .await?
        .and_then(|c| c.totp_secret)
        .unwrap_or_default();
    let checked = check_second_factor(
        &state,
        &state.second_factor,
        &operator,
        &secret,
        code,
        true,
        address,
    )
    .await?;
    let second_factor = match checked {
        Err(throttled) => return Err(Error::Throttled(throttled.retry_after).into()),
        Ok(None) => {
            let page = pages::render(&MfaPage {
                csrf: session.csrf_token,
                error: Some("That code is not valid (a code works only once).".into()),
            })?;
            return Ok((StatusCode::UNAUTHORIZED, page).into_response());
        }
        Ok(Some(kind)) => kind,
    };
    let mut conn = state.redis.conn().await?;
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
            details: serde_json::json!({ "second_factor": second_factor }),
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
    if let Some(token) = own_cookie(&state, &headers, SESSION_COOKIE) {
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
