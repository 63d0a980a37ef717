//! Sign-up, email verification, sign-in and out, password reset.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use saas_core::audit;
use saas_core::auth::{password, signin};
use saas_core::customers::{self, SignUp, TokenPurpose};
use saas_core::outbox::NewEmail;
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{
    CSRF_COOKIE, ClientIp, SESSION_COOKIE, Web, anonymous_csrf, check_anonymous_csrf, own_cookie,
    safe_next, set_cookie, with_cookie,
};
use crate::error::{AppError, PageError};
use crate::extract::{Form, Query};
use crate::state::AppState;
use crate::views::{ForgotPage, FormError, LoginPage, MessagePage, ResetPage, SignupPage, render};

const VERIFY_TTL: Duration = Duration::from_secs(48 * 3600);
const RESET_TTL: Duration = Duration::from_secs(3600);
/// Password-reset submissions allowed per address and per link.
const RESET_WINDOW: Duration = Duration::from_secs(3600);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/instances") }))
        .route("/signup", get(signup_form).post(signup))
        .route("/signup/done", get(signup_done))
        .route("/verify", get(verify))
        .route("/verify/resend", post(resend_verification))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/password/forgot", get(forgot_form).post(forgot))
        .route("/password/reset", get(reset_form).post(reset))
}

/// A page carrying the anonymous CSRF cookie when it had none.
fn anonymous_page(
    headers: &HeaderMap,
    state: &AppState,
    page: impl FnOnce(String) -> Response,
) -> Response {
    let (token, fresh) = anonymous_csrf(state, headers);
    let response = page(token.clone());
    if fresh {
        with_cookie(response, &set_cookie(state, CSRF_COOKIE, &token, None))
    } else {
        response
    }
}

fn message(title: &str, text: &str, link: Option<(&str, &str)>) -> Response {
    render(&MessagePage {
        title: title.to_owned(),
        message: text.to_owned(),
        link: link.map(|(h, t)| (h.to_owned(), t.to_owned())),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SignupForm {
    csrf_token: String,
    email: String,
    company_name: String,
    password: String,
}

async fn signup_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    anonymous_page(&headers, &state, |csrf| {
        render(&SignupPage {
            csrf,
            email: String::new(),
            company_name: String::new(),
            error: None,
        })
    })
}

fn validate_signup(form: &SignupForm) -> Result<(String, String), AppError> {
    let email = customers::normalize_email(&form.email)
        .ok_or_else(|| AppError::invalid("email", "enter a valid email address"))?;
    let company = form.company_name.trim();
    if company.is_empty() || company.chars().count() > 200 {
        return Err(AppError::invalid(
            "company_name",
            "enter your company's name (up to 200 characters)",
        ));
    }
    password::check_policy(&form.password)
        .map_err(|e| AppError::invalid("password", format!("password {e}")))?;
    Ok((email, company.to_owned()))
}

/// Answers the same whether or not the address already has an account: the
/// password is hashed either way and one email is stored either way (to the
/// existing owner, saying someone tried to sign up), within the address's
/// hourly share; no SMTP server is waited for.
async fn signup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SignupForm>,
) -> Result<Response, PageError> {
    check_anonymous_csrf(&state, &headers, &form.csrf_token)?;
    let ip_key = ip.map(|i| i.to_string()).unwrap_or_default();
    state
        .throttle("signup", &ip_key, 20, Duration::from_secs(3600))
        .await?;
    let (email, company) = match validate_signup(&form) {
        Ok(valid) => valid,
        Err(err) => {
            let page = SignupPage {
                csrf: form.csrf_token.clone(),
                email: form.email.clone(),
                company_name: form.company_name.clone(),
                error: Some(FormError::from(&err)),
            };
            return Ok((err.status(), render(&page)).into_response());
        }
    };
    let hash = password::hash(SecretString::from(form.password))
        .await
        .map_err(AppError::from)?;
    let base = state.public_base(&headers);
    let mut tx = state.db.begin().await.map_err(AppError::from)?;
    let outcome = customers::sign_up(&mut tx, &email, &company, &hash)
        .await
        .map_err(AppError::from)?;
    // Nothing the customer typed goes into mail to an address nobody has
    // confirmed: the company name stays out, the links are our own.
    let (subject, body, purpose) = match &outcome {
        SignUp::Created(customer) => {
            let token =
                customers::issue_token(&mut tx, customer.id, TokenPurpose::VerifyEmail, VERIFY_TTL)
                    .await
                    .map_err(AppError::from)?;
            audit::record(
                &mut tx,
                &audit::Entry {
                    actor: &format!("customer:{email}"),
                    action: "customer.sign_up",
                    target: Some(format!("customer:{}", customer.id)),
                    address: ip,
                    details: json!({ "company_name": company }),
                },
            )
            .await
            .map_err(AppError::from)?;
            (
                "Confirm your email address",
                format!(
                    "Welcome to Odoo hosting.\n\nConfirm your email address by opening this link within 48 hours:\n\n{base}/verify?token={token}\n\nIf you did not sign up, ignore this message."
                ),
                "verify_email",
            )
        }
        SignUp::EmailTaken(_) => (
            "Someone tried to sign up with your address",
            format!(
                "Someone (perhaps you) tried to create an account with this email address, which already has one.\n\nSign in: {base}/login\nForgot your password? {base}/password/forgot\n\nIf it was not you, you can ignore this message."
            ),
            "sign_up_existing",
        ),
    };
    // Stored with the sign-up, sent later by the background sender; past
    // the address's hourly share it is dropped, the answer is the same.
    state
        .mailer
        .enqueue(
            &mut tx,
            &NewEmail {
                to: &email,
                subject,
                body_text: &body,
                purpose,
            },
        )
        .await
        .map_err(AppError::from)?;
    tx.commit().await.map_err(AppError::from)?;
    state.mailer.wake();
    Ok(Redirect::to("/signup/done").into_response())
}

async fn signup_done() -> Response {
    message(
        "Check your email",
        "We sent a link to the address you gave. Open it to confirm your address, then sign in.",
        Some(("/login", "Sign in")),
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TokenQuery {
    token: String,
}

async fn verify(
    State(state): State<AppState>,
    Query(query): Query<TokenQuery>,
) -> Result<Response, PageError> {
    let mut tx = state.db.begin().await.map_err(AppError::from)?;
    let Some(customer_id) =
        customers::consume_token(&mut tx, TokenPurpose::VerifyEmail, &query.token)
            .await
            .map_err(AppError::from)?
    else {
        return Ok((
            StatusCode::GONE,
            message(
                "This link does not work",
                "The link is invalid, was already used, or has expired. Sign in to have a new one sent.",
                Some(("/login", "Sign in")),
            ),
        )
            .into_response());
    };
    customers::mark_verified(&mut tx, customer_id)
        .await
        .map_err(AppError::from)?;
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: &format!("customer:{customer_id}"),
            action: "customer.verify_email",
            target: Some(format!("customer:{customer_id}")),
            address: None,
            details: json!({}),
        },
    )
    .await
    .map_err(AppError::from)?;
    tx.commit().await.map_err(AppError::from)?;
    Ok(message(
        "Email address confirmed",
        "Thank you. You can now create Odoo instances.",
        Some(("/instances", "Continue")),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CsrfForm {
    csrf_token: String,
}

async fn resend_verification(
    State(state): State<AppState>,
    Web(who): Web,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    who.check_csrf(&form.csrf_token)?;
    if who.customer.email_verified_at.is_some() {
        return Ok(Redirect::to("/instances").into_response());
    }
    state
        .throttle(
            "resend",
            &who.customer.id.to_string(),
            5,
            Duration::from_secs(3600),
        )
        .await?;
    let mut conn = state.db.acquire().await.map_err(AppError::from)?;
    let token = customers::issue_token(
        &mut conn,
        who.customer.id,
        TokenPurpose::VerifyEmail,
        VERIFY_TTL,
    )
    .await
    .map_err(AppError::from)?;
    let body = format!(
        "Confirm your email address by opening this link within 48 hours:\n\n{}/verify?token={token}\n",
        state.public_base(&headers)
    );
    state
        .mailer
        .enqueue(
            &mut conn,
            &NewEmail {
                to: &who.customer.email,
                subject: "Confirm your email address",
                body_text: &body,
                purpose: "verify_email",
            },
        )
        .await
        .map_err(AppError::from)?;
    state.mailer.wake();
    Ok(message(
        "Check your email",
        "We sent you a new confirmation link.",
        Some(("/instances", "Back")),
    ))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NextQuery {
    next: Option<String>,
}

async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    anonymous_page(&headers, &state, |csrf| {
        render(&LoginPage {
            csrf,
            email: String::new(),
            next: safe_next(query.next.as_deref()),
            error: None,
            notice: None,
        })
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginForm {
    csrf_token: String,
    email: String,
    password: String,
    next: Option<String>,
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    check_anonymous_csrf(&state, &headers, &form.csrf_token)?;
    let email = form.email.trim().to_lowercase();
    let mut conn = state.redis().await?;
    let delay = state
        .sign_in
        .admit(&mut conn, &email, ip)
        .await
        .map_err(AppError::from)?
        .map_err(|t| AppError::Throttled(t.retry_after))?;
    // An account under attack: every attempt on it waits, the owner's too.
    tokio::time::sleep(delay).await;
    let credentials = customers::credentials(&state.db, &email)
        .await
        .map_err(AppError::from)?;
    let secret = SecretString::from(form.password.clone());
    let (customer, owner) = match credentials {
        Some((customer, hash)) => {
            let owner = (!customer.disabled).then(|| (customer.id, customer.email.clone()));
            let right = password::verify(secret, hash)
                .await
                .map_err(AppError::from)?;
            (right.then_some(customer), owner)
        }
        None => {
            let dummy = password::dummy_hash().await.map_err(AppError::from)?;
            password::verify(secret, dummy)
                .await
                .map_err(AppError::from)?;
            (None, None)
        }
    };
    let Some(customer) = customer.filter(|c| !c.disabled) else {
        let failure = state
            .sign_in
            .failed(&mut conn, &email)
            .await
            .map_err(AppError::from)?;
        if failure.tell_owner
            && let Some(owner) = owner
        {
            tell_owner_of_attack(&state, &headers, owner, failure.failures, ip).await?;
        }
        let page = LoginPage {
            csrf: form.csrf_token.clone(),
            email: form.email.clone(),
            next: safe_next(form.next.as_deref()),
            error: Some("Wrong email or password.".to_owned()),
            notice: None,
        };
        return Ok((StatusCode::UNAUTHORIZED, render(&page)).into_response());
    };
    state
        .sign_in
        .succeeded(&mut conn, &email, ip)
        .await
        .map_err(AppError::from)?;
    // Signing in again in this browser ends the session it replaces.
    if let Some(replaced) = own_cookie(&state, &headers, SESSION_COOKIE) {
        state
            .sessions
            .destroy(&mut conn, &replaced)
            .await
            .map_err(AppError::from)?;
    }
    let (token, mut session) = state
        .sessions
        .create(&mut conn, customer.id, true)
        .await
        .map_err(AppError::from)?;
    // Signed in within the second a reset ended the older sessions: this
    // one comes after the reset, so it must not look as old as they do.
    if let Some(ended) = state.sessions_ended_at(&mut conn, customer.id).await?
        && session.created_at <= ended
    {
        session.created_at = ended + 1;
        state
            .sessions
            .save(&mut conn, &token, &session)
            .await
            .map_err(AppError::from)?;
    }
    let mut tx = state.db.begin().await.map_err(AppError::from)?;
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: &format!("customer:{}", customer.email),
            action: "customer.sign_in",
            target: Some(format!("customer:{}", customer.id)),
            address: ip,
            details: json!({}),
        },
    )
    .await
    .map_err(AppError::from)?;
    tx.commit().await.map_err(AppError::from)?;
    let redirect = Redirect::to(&safe_next(form.next.as_deref())).into_response();
    let max_age = state.settings.session_absolute.as_secs();
    Ok(with_cookie(
        redirect,
        &set_cookie(&state, SESSION_COOKIE, &token, Some(max_age)),
    ))
}

/// Mails the owner of an account that is collecting failed sign-ins (once
/// per throttle window), and records it in the audit log. The mail goes
/// out from the outbox: the attacker's request does not wait for SMTP.
async fn tell_owner_of_attack(
    state: &AppState,
    headers: &HeaderMap,
    (owner_id, owner): (uuid::Uuid, String),
    failures: u32,
    ip: Option<std::net::IpAddr>,
) -> Result<(), AppError> {
    let reset = format!("{}/password/forgot", state.public_base(headers));
    let (subject, body) = signin::attack_notice(
        "portal",
        failures,
        state.sign_in.limits.window,
        Some(&reset),
    );
    let mut tx = state.db.begin().await?;
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: "system:portal",
            action: "customer.sign_in_attacked",
            target: Some(format!("customer:{owner_id}")),
            address: ip,
            details: json!({ "failures": failures }),
        },
    )
    .await?;
    state
        .mailer
        .enqueue(
            &mut tx,
            &NewEmail {
                to: &owner,
                subject: &subject,
                body_text: &body,
                purpose: "sign_in_attack",
            },
        )
        .await?;
    tx.commit().await?;
    state.mailer.wake();
    Ok(())
}

async fn logout(
    State(state): State<AppState>,
    Web(who): Web,
    Form(form): Form<CsrfForm>,
) -> Result<Response, PageError> {
    who.check_csrf(&form.csrf_token)?;
    if let Some((token, _)) = &who.session {
        let mut conn = state.redis().await?;
        state
            .sessions
            .destroy(&mut conn, token)
            .await
            .map_err(AppError::from)?;
    }
    let redirect = Redirect::to("/login").into_response();
    Ok(with_cookie(
        redirect,
        &set_cookie(&state, SESSION_COOKIE, "", Some(0)),
    ))
}

async fn forgot_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    anonymous_page(&headers, &state, |csrf| {
        render(&ForgotPage { csrf, error: None })
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ForgotForm {
    csrf_token: String,
    email: String,
}

async fn forgot(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<ForgotForm>,
) -> Result<Response, PageError> {
    check_anonymous_csrf(&state, &headers, &form.csrf_token)?;
    let Some(email) = customers::normalize_email(&form.email) else {
        let page = ForgotPage {
            csrf: form.csrf_token.clone(),
            error: Some("Enter a valid email address.".to_owned()),
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response());
    };
    let ip_key = ip.map(|i| i.to_string()).unwrap_or_default();
    state
        .throttle("forgot-ip", &ip_key, 20, Duration::from_secs(3600))
        .await?;
    state
        .throttle(
            "forgot-email",
            &email.to_lowercase(),
            5,
            Duration::from_secs(3600),
        )
        .await?;
    if let Some((customer, _)) = customers::credentials(&state.db, &email)
        .await
        .map_err(AppError::from)?
        && !customer.disabled
    {
        let mut conn = state.db.acquire().await.map_err(AppError::from)?;
        let token = customers::issue_token(
            &mut conn,
            customer.id,
            TokenPurpose::ResetPassword,
            RESET_TTL,
        )
        .await
        .map_err(AppError::from)?;
        let body = format!(
            "Someone (perhaps you) asked to reset the password of your account.\n\nChoose a new password within an hour:\n\n{}/password/reset?token={token}\n\nIf it was not you, ignore this message: your password stays as it is.",
            state.public_base(&headers)
        );
        state
            .mailer
            .enqueue(
                &mut conn,
                &NewEmail {
                    to: &customer.email,
                    subject: "Reset your password",
                    body_text: &body,
                    purpose: "reset_password",
                },
            )
            .await
            .map_err(AppError::from)?;
        state.mailer.wake();
    }
    Ok(message(
        "Check your email",
        "If an account uses this address, we sent it a link to choose a new password. The link works once, within an hour.",
        Some(("/login", "Sign in")),
    ))
}

fn dead_link() -> Response {
    (
        StatusCode::GONE,
        message(
            "This link does not work",
            "The link is invalid, was already used, or has expired. Ask for a new one.",
            Some(("/password/forgot", "Reset your password")),
        ),
    )
        .into_response()
}

async fn reset_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<TokenQuery>,
) -> Result<Response, PageError> {
    if !customers::token_is_live(&state.db, TokenPurpose::ResetPassword, &query.token)
        .await
        .map_err(AppError::from)?
    {
        return Ok(dead_link());
    }
    Ok(anonymous_page(&headers, &state, |csrf| {
        render(&ResetPage {
            csrf,
            token: query.token.clone(),
            error: None,
        })
    }))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResetForm {
    csrf_token: String,
    token: String,
    password: String,
}

async fn reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<ResetForm>,
) -> Result<Response, PageError> {
    check_anonymous_csrf(&state, &headers, &form.csrf_token)?;
    let ip_key = ip.map(|i| i.to_string()).unwrap_or_default();
    state
        .throttle("reset-ip", &ip_key, 20, RESET_WINDOW)
        .await?;
    state
        .throttle("reset-token", &form.token, 5, RESET_WINDOW)
        .await?;
    // The link first: a bogus or spent token costs one indexed lookup,
    // never a password hash.
    if !customers::token_is_live(&state.db, TokenPurpose::ResetPassword, &form.token)
        .await
        .map_err(AppError::from)?
    {
        return Ok(dead_link());
    }
    if let Err(e) = password::check_policy(&form.password) {
        let err = AppError::invalid("password", format!("password {e}"));
        let page = ResetPage {
            csrf: form.csrf_token.clone(),
            token: form.token.clone(),
            error: Some(FormError::from(&err)),
        };
        return Ok((err.status(), render(&page)).into_response());
    }
    let hash = password::hash(SecretString::from(form.password))
        .await
        .map_err(AppError::from)?;
    let mut tx = state.db.begin().await.map_err(AppError::from)?;
    let Some(customer_id) =
        customers::consume_token(&mut tx, TokenPurpose::ResetPassword, &form.token)
            .await
            .map_err(AppError::from)?
    else {
        return Ok(dead_link());
    };
    customers::set_password(&mut tx, customer_id, &hash)
        .await
        .map_err(AppError::from)?;
    // Whoever could read the reset email owns the address.
    customers::mark_verified(&mut tx, customer_id)
        .await
        .map_err(AppError::from)?;
    audit::record(
        &mut tx,
        &audit::Entry {
            actor: &format!("customer:{customer_id}"),
            action: "customer.reset_password",
            target: Some(format!("customer:{customer_id}")),
            address: ip,
            details: json!({}),
        },
    )
    .await
    .map_err(AppError::from)?;
    // Before the commit: when Redis cannot record it, nothing changes.
    let mut conn = state.redis().await?;
    state.end_sessions(&mut conn, customer_id).await?;
    tx.commit().await.map_err(AppError::from)?;
    Ok(message(
        "Password changed",
        "Your new password is set. Sign in with it.",
        Some(("/login", "Sign in")),
    ))
}
