//! Who is asking: operators signed in with a session cookie (pages) or an
//! API token (the JSON API), their roles, and CSRF on every form.

pub mod login;
pub mod totp;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use saas_core::auth::constant_time_eq;
use saas_core::auth::session::Session;
use saas_core::ops::Actor;
use serde::Serialize;
use uuid::Uuid;

use crate::error::{Error, PageError};
use crate::params::{FormParams, Params};
use crate::repo::operators::{self, OperatorRow};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "saas_admin_session";
/// Double-submit token of the login form, before any session exists.
pub const LOGIN_CSRF_COOKIE: &str = "saas_admin_login_csrf";
pub const CSRF_FIELD: &str = "_csrf";

/// What an operator may do; each role includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Also changes tenants, customers, plans and operations.
    Operator,
    /// Also manages servers and operators.
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Owner, Role::Operator, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Owner => "owner",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "owner" => Ok(Role::Owner),
            other => Err(format!("unknown role {other:?}: owner, operator or viewer")),
        }
    }
}

impl TryFrom<String> for Role {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        value.parse()
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operator making a request.
#[derive(Debug, Clone)]
pub struct CurrentOperator {
    pub operator: OperatorRow,
    pub address: Option<IpAddr>,
    /// The session's CSRF token (pages); `None` for API tokens.
    pub csrf: Option<String>,
}

impl CurrentOperator {
    pub fn id(&self) -> Uuid {
        self.operator.id
    }

    pub fn role(&self) -> Role {
        self.operator.role
    }

    pub fn actor(&self) -> Actor {
        Actor {
            name: format!("operator:{}", self.operator.email),
            address: self.address,
        }
    }

    /// Refuses (403) unless the operator's role is at least `role`.
    pub fn require(&self, role: Role) -> Result<(), Error> {
        if self.operator.role >= role {
            Ok(())
        } else {
            Err(Error::Forbidden)
        }
    }

    pub fn can(&self, role: Role) -> bool {
        self.operator.role >= role
    }

    pub fn csrf_token(&self) -> &str {
        self.csrf.as_deref().unwrap_or("")
    }
}

/// The client's address: the peer, or what a proxy of `TRUSTED_PROXIES`
/// says it forwarded for.
pub fn client_address(state: &AppState, parts: &Parts) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip());
    state.trusted_proxies.client_address(peer, &parts.headers)
}

/// The name cookie `name` goes by. With https it is `__Host-<name>`, which
/// browsers keep only when it is Secure, has Path=/ and no Domain: a
/// tenant's Odoo on a sibling subdomain (customer-controlled) can then
/// neither plant nor overwrite admin's session or login cookie.
pub fn cookie_name(state: &AppState, name: &str) -> String {
    if state.secure_cookies {
        format!("__Host-{name}")
    } else {
        name.to_owned()
    }
}

/// The value of admin's cookie `name` (under its [`cookie_name`]).
pub fn own_cookie<'a>(state: &AppState, headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    cookie(headers, &cookie_name(state, name))
}

/// The value of cookie `name`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value (HttpOnly, SameSite=Lax, Path=/, no Domain; Secure
/// and `__Host-` with https); `max_age` 0 deletes it.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let name = cookie_name(state, name);
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if state.secure_cookies {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn redirect_to_login() -> Response {
    Redirect::to("/login").into_response()
}

/// The session behind the request's cookie, if any: `(token, session)`.
pub async fn load_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, Session)>, Error> {
    let Some(token) = own_cookie(state, headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let mut conn = state.redis.conn().await?;
    Ok(state
        .sessions
        .load(&mut conn, token)
        .await?
        .map(|session| (token.to_owned(), session)))
}

/// An operator signed in to the pages (second factor passed). Anonymous
/// requests are redirected to the login page.
pub struct PageUser(pub CurrentOperator);

impl FromRequestParts<AppState> for PageUser {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, PageError> {
        let Some((_, session)) = load_session(state, &parts.headers).await? else {
            return Err(PageError(Error::Unauthorized));
        };
        if !session.mfa_passed {
            return Err(PageError(Error::Unauthorized));
        }
        let operator = operators::get(&state.db, session.user_id).await?;
        match operator {
            Some(operator) if !operator.disabled => Ok(PageUser(CurrentOperator {
                operator,
                address: client_address(state, parts),
                csrf: Some(session.csrf_token),
            })),
            _ => Err(PageError(Error::Unauthorized)),
        }
    }
}

/// A form posted by a signed-in operator, with its CSRF token checked.
pub struct CsrfForm(pub CurrentOperator, pub Params);

impl FromRequest<AppState> for CsrfForm {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, PageError> {
        let (mut parts, body) = req.into_parts();
        let PageUser(user) = PageUser::from_request_parts(&mut parts, state).await?;
        let FormParams(params) =
            FormParams::from_request(Request::from_parts(parts, body), state).await?;
        let sent = params.raw(CSRF_FIELD).unwrap_or("");
        if sent.is_empty() || !constant_time_eq(sent, user.csrf_token()) {
            return Err(PageError(Error::Csrf));
        }
        Ok(CsrfForm(user, params))
    }
}

/// The window failed bearer tokens are counted in, per client address.
const TOKEN_FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// An operator calling the JSON API with `Authorization: Bearer <token>`.
pub struct ApiUser(pub CurrentOperator);

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer(&parts.headers).ok_or(Error::Unauthorized)?;
        let address = client_address(state, parts);
        let hash = saas_core::auth::sha256_hex(token);
        let operator = match state.cached_token(&hash) {
            Some(row) => Some(row),
            None => {
                // Refused while this address is over its budget of failed
                // tokens, even with a good one, so guessing gains nothing. A
                // token checked moments ago (cached) costs no Redis request.
                let throttle = TokenThrottle::new(state, address);
                throttle.check(state).await?;
                let row = operators::by_api_token(&state.db, token).await?;
                match &row {
                    Some(row) => state.cache_token(hash, row.clone()),
                    None => throttle.failed(state).await?,
                }
                row
            }
        };
        match operator {
            Some(operator) if !operator.disabled => Ok(ApiUser(CurrentOperator {
                operator,
                address,
                csrf: None,
            })),
            _ => Err(Error::Unauthorized),
        }
    }
}

/// Failed bearer tokens counted per client address.
struct TokenThrottle {
    key: String,
}

impl TokenThrottle {
    fn new(state: &AppState, address: Option<std::net::IpAddr>) -> Self {
        let address = address.map(|a| a.to_string()).unwrap_or_default();
        Self {
            key: state.key(&format!(
                "admin:throttle:api-token-ip:{}",
                saas_core::auth::sha256_hex(&address)
            )),
        }
    }

    async fn check(&self, state: &AppState) -> Result<(), Error> {
        let mut conn = state.redis.conn().await?;
        saas_core::auth::throttle::check(&mut conn, &self.key, state.token_failures)
            .await?
            .map_err(|t| Error::Throttled(t.retry_after))
    }

    async fn failed(&self, state: &AppState) -> Result<(), Error> {
        let mut conn = state.redis.conn().await?;
        saas_core::auth::throttle::hit(
            &mut conn,
            &self.key,
            state.token_failures,
            TOKEN_FAILURE_WINDOW,
        )
        .await?
        .map_err(|t| Error::Throttled(t.retry_after))
    }
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Role ranks for [`ApiRole`].
pub const OPERATOR: u8 = 1;
pub const OWNER: u8 = 2;

impl Role {
    fn rank(self) -> u8 {
        match self {
            Role::Viewer => 0,
            Role::Operator => OPERATOR,
            Role::Owner => OWNER,
        }
    }
}

/// An API caller whose role ranks at least `MIN`, checked before the body
/// is read: a viewer gets 403 whatever they send.
pub struct ApiRole<const MIN: u8>(pub CurrentOperator);

impl<const MIN: u8> FromRequestParts<AppState> for ApiRole<MIN> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let ApiUser(user) = ApiUser::from_request_parts(parts, state).await?;
        if user.role().rank() < MIN {
            return Err(Error::Forbidden);
        }
        Ok(ApiRole(user))
    }
}
