//! Who is asking: the session cookie (web UI), or a bearer API token; and
//! the CSRF checks that go with them.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use saas_core::auth::session::Session;
use saas_core::auth::signin::SignInLimits;
use saas_core::auth::tokens::{self, Owner};
use saas_core::auth::{constant_time_eq, random_token};
use saas_core::customers::{self, Customer};
use saas_core::ops::Actor;

use crate::error::{AppError, PageError};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "saas_portal_session";
/// Double-submit CSRF token for forms shown before sign-in.
pub const CSRF_COOKIE: &str = "saas_portal_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Failed bearer-token attempts one client address may make per window
/// before every bearer request from it answers 429 until the window ends.
const TOKEN_THROTTLE: &str = "api-token-ip";
const TOKEN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Sign-in limits per 15 minutes: 10 attempts per (account, address) and 50
/// per address; from 20 failures on an account every attempt on it is
/// slowed (growing delays) and its owner is mailed; 200 failures from all
/// addresses refuse it until the window ends.
pub const SIGN_IN_LIMITS: SignInLimits = SignInLimits {
    per_pair: 10,
    per_address: 50,
    per_account: 200,
    slow_after: 20,
    notify_after: 20,
    window: Duration::from_secs(15 * 60),
};

/// The value of cookie `name`.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The name cookie `name` goes by. With https it is `__Host-<name>`, which
/// browsers keep only when it is Secure, has Path=/ and no Domain: a
/// tenant's Odoo on a sibling subdomain (`shop.DOMAIN`, customer-controlled)
/// can then neither plant nor overwrite the portal's session or CSRF cookie.
pub fn cookie_name(state: &AppState, name: &str) -> String {
    if state.secure_cookies {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

/// The value of the portal's cookie `name` (under its [`cookie_name`]).
pub fn own_cookie(state: &AppState, headers: &HeaderMap, name: &str) -> Option<String> {
    cookie(headers, &cookie_name(state, name))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, no Domain; Secure
/// and `__Host-` behind https.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<u64>) -> String {
    let name = cookie_name(state, name);
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if state.secure_cookies {
        cookie.push_str("; Secure");
    }
    cookie
}

/// The client's address: the peer, or what a proxy of `TRUSTED_PROXIES`
/// says it forwarded for.
pub fn address(state: &AppState, parts: &Parts) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    state.trusted_proxies.client_address(peer, &parts.headers)
}

/// A signed-in customer.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub customer: Customer,
    /// `None` for API-token requests.
    pub session: Option<(String, Session)>,
    pub address: Option<IpAddr>,
}

impl SignedIn {
    pub fn actor(&self) -> Actor {
        Actor {
            name: format!("customer:{}", self.customer.email),
            address: self.address,
        }
    }

    pub fn csrf_token(&self) -> String {
        self.session
            .as_ref()
            .map(|(_, s)| s.csrf_token.clone())
            .unwrap_or_default()
    }

    /// Checks a form's CSRF token against the session's.
    pub fn check_csrf(&self, given: &str) -> Result<(), AppError> {
        match &self.session {
            Some((_, session)) if constant_time_eq(&session.csrf_token, given) => Ok(()),
            Some(_) => Err(AppError::Csrf),
            None => Ok(()),
        }
    }
}

async fn from_session(state: &AppState, parts: &Parts) -> Result<Option<SignedIn>, AppError> {
    let Some(token) = own_cookie(state, &parts.headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let mut conn = state.redis().await?;
    let Some(session) = state.sessions.load(&mut conn, &token).await? else {
        return Ok(None);
    };
    // A password reset or change ends every session that existed then.
    if let Some(ended) = state.sessions_ended_at(&mut conn, session.user_id).await?
        && session.created_at <= ended
    {
        state.sessions.destroy(&mut conn, &token).await?;
        return Ok(None);
    }
    let customer = customers::get(&state.db, session.user_id).await?;
    Ok(customer.filter(|c| !c.disabled).map(|customer| SignedIn {
        customer,
        session: Some((token, session)),
        address: address(state, parts),
    }))
}

/// Web UI: a session, or a redirect to the sign-in page.
pub struct Web(pub SignedIn);

pub enum WebRejection {
    SignIn(String),
    Error(PageError),
}

impl IntoResponse for WebRejection {
    fn into_response(self) -> Response {
        match self {
            WebRejection::SignIn(next) => {
                Redirect::to(&format!("/login?next={}", encode(&next))).into_response()
            }
            WebRejection::Error(err) => err.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for Web {
    type Rejection = WebRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match from_session(state, parts).await {
            Ok(Some(signed_in)) => Ok(Web(signed_in)),
            Ok(None) => {
                let next = parts
                    .extensions
                    .get::<OriginalUri>()
                    .map_or_else(|| parts.uri.path().to_owned(), |u| u.0.path().to_owned());
                let next = if parts.method == Method::GET {
                    next
                } else {
                    "/instances".to_owned()
                };
                Err(WebRejection::SignIn(next))
            }
            Err(err) => Err(WebRejection::Error(PageError(err))),
        }
    }
}

/// JSON API: `Authorization: Bearer osc_...`, or the session cookie (the
/// page scripts), which for anything but GET must echo `X-CSRF-Token`.
pub struct Api(pub SignedIn);

impl FromRequestParts<AppState> for Api {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(secret) = bearer {
            let ip = address(state, parts);
            let ip_key = ip.map(|i| i.to_string()).unwrap_or_default();
            // Refused while this address is over its failure budget, even
            // with a good token, so guessing gains nothing.
            state
                .throttle_check(TOKEN_THROTTLE, &ip_key, state.token_failures)
                .await?;
            let owner = tokens::authenticate(&state.db, Owner::Customer, secret).await?;
            let customer = match owner {
                Some(id) => customers::get(&state.db, id).await?,
                None => None,
            };
            return match customer.filter(|c| !c.disabled) {
                Some(customer) => Ok(Api(SignedIn {
                    customer,
                    session: None,
                    address: ip,
                })),
                None => {
                    state
                        .throttle(TOKEN_THROTTLE, &ip_key, state.token_failures, TOKEN_WINDOW)
                        .await?;
                    Err(AppError::Unauthorized)
                }
            };
        }
        let signed_in = from_session(state, parts)
            .await?
            .ok_or(AppError::Unauthorized)?;
        if !matches!(parts.method, Method::GET | Method::HEAD) {
            let given = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            signed_in.check_csrf(given)?;
        }
        Ok(Api(signed_in))
    }
}

/// The anonymous forms' CSRF token: the cookie's, or a new one to set.
pub fn anonymous_csrf(state: &AppState, headers: &HeaderMap) -> (String, bool) {
    match own_cookie(state, headers, CSRF_COOKIE).filter(|v| v.len() == 64) {
        Some(token) => (token, false),
        None => (random_token(32), true),
    }
}

/// Checks an anonymous form's token against its cookie.
pub fn check_anonymous_csrf(
    state: &AppState,
    headers: &HeaderMap,
    given: &str,
) -> Result<(), AppError> {
    match own_cookie(state, headers, CSRF_COOKIE) {
        Some(expected) if !given.is_empty() && constant_time_eq(&expected, given) => Ok(()),
        _ => Err(AppError::Csrf),
    }
}

/// Percent-encodes a query value.
pub fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A local path to return to after sign-in (never another site): exactly
/// one leading `/`, no whitespace or control character anywhere (browsers
/// drop tabs and newlines, so `/\t/evil.example` would become
/// `//evil.example`), no backslash (read as `/` by browsers). Anything else
/// falls back to the instances page.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            n.to_owned()
        }
        _ => "/instances".to_owned(),
    }
}

/// The client's address (see [`address`]).
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(address(state, parts)))
    }
}

/// Adds a `Set-Cookie` header to a response.
pub fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = axum::http::HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_a_same_origin_path_or_the_default() {
        for good in ["/instances", "/instances/abc?done=backup", "/a:b"] {
            assert_eq!(safe_next(Some(good)), good);
        }
        for bad in [
            "//evil.example",
            "/\t/evil.example",
            "/%09/evil.example\t",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "evil.example",
            "/\r\nSet-Cookie: x=1",
            "/a\u{0b}b",
            "/ /evil.example",
            "/\u{2028}/evil.example",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/instances", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/instances");
    }
}
