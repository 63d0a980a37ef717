//! The one error type of admin's edge. The API renders it as
//! `{"error": {"code", "message", "field"}}`; pages render it as HTML.
//! Internal failures are logged with their cause and shown opaquely.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use saas_core::error_chain::Chain;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that cannot be used: 422 naming the field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A body that is not JSON, or not the JSON expected at all: 400.
    #[error("{0}")]
    BadRequest(String),
    #[error("sign in or send an API token")]
    Unauthorized,
    #[error("your role may not do this")]
    Forbidden,
    #[error("the form is stale or was not sent from this site; reload the page and try again")]
    Csrf,
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A path segment that cannot be read (such as invalid UTF-8): 404
    /// naming the segment.
    #[error("{0}: malformed in the address, so nothing was found")]
    BadPath(String),
    /// The request conflicts with the current state: 409.
    #[error("{message}")]
    Conflict {
        message: String,
        field: Option<String>,
    },
    #[error("too many attempts; try again in {} s", .0.as_secs())]
    Throttled(Duration),
    #[error("{0} is unavailable; try again shortly")]
    Unavailable(&'static str),
    /// Too many password hashes at once: 503 with `Retry-After`.
    #[error("the service is busy; try again in {} s", .0.as_secs().max(1))]
    Busy(Duration),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            message: message.into(),
            field: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden | Error::Csrf => StatusCode::FORBIDDEN,
            Error::NotFound(_) | Error::BadPath(_) => StatusCode::NOT_FOUND,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) | Error::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid",
            Error::BadRequest(_) => "bad_request",
            Error::Unauthorized => "unauthorized",
            Error::Forbidden => "forbidden",
            Error::Csrf => "csrf",
            Error::NotFound(_) | Error::BadPath(_) => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Throttled(_) => "throttled",
            Error::Unavailable(_) => "unavailable",
            Error::Busy(_) => "busy",
            Error::Internal(_) => "internal",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { field, .. } => Some(field),
            Error::Conflict { field, .. } => field.as_deref(),
            Error::BadPath(field) => Some(field),
            _ => None,
        }
    }

    /// Logs internal errors once, with their cause chain.
    fn log(&self) {
        if let Error::Internal(err) = self {
            tracing::error!(error = %Chain(err.as_ref()), "request failed");
        }
    }

    fn retry_after(&self) -> Option<HeaderValue> {
        match self {
            Error::Throttled(after) | Error::Busy(after) => {
                HeaderValue::from_str(&after.as_secs().max(1).to_string()).ok()
            }
            _ => None,
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::Internal(err.into())
    }
}

impl From<saas_core::auth::hashing::HashError> for Error {
    fn from(err: saas_core::auth::hashing::HashError) -> Self {
        use saas_core::auth::hashing::HashError;
        match err {
            HashError::Busy { retry_after } => Error::Busy(retry_after),
            HashError::Failed(reason) => Error::Internal(anyhow::anyhow!(reason)),
        }
    }
}

impl From<redis::RedisError> for Error {
    fn from(err: redis::RedisError) -> Self {
        tracing::warn!(error = %Chain(&err), "Redis request failed");
        Error::Unavailable("the session store (Redis)")
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.log();
        let body = json!({
            "error": { "code": self.code(), "message": self.to_string(), "field": self.field() }
        });
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let Some(after) = self.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, after);
        }
        response
    }
}

/// An [`Error`] on a page: an HTML answer with the same status.
#[derive(Debug)]
pub struct PageError(pub Error);

macro_rules! page_error_from {
    ($($source:ty),+) => {$(
        impl From<$source> for PageError {
            fn from(err: $source) -> Self {
                PageError(err.into())
            }
        }
    )+};
}

page_error_from!(
    Error,
    sqlx::Error,
    redis::RedisError,
    anyhow::Error,
    saas_core::auth::hashing::HashError
);

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let err = self.0;
        err.log();
        if matches!(err, Error::Unauthorized) {
            return crate::auth::redirect_to_login();
        }
        let message = match err.field() {
            Some(field) if !matches!(err, Error::Invalid { .. } | Error::BadPath(_)) => {
                format!("{field}: {err}")
            }
            _ => err.to_string(),
        };
        let page = crate::pages::ErrorPage {
            status: err.status().as_u16(),
            message,
        };
        let html = crate::pages::render(&page).unwrap_or_else(|_| Html(String::new()));
        let mut response = (err.status(), html).into_response();
        if let Some(after) = err.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, after);
        }
        response
    }
}

pub type PageResult<T = Response> = std::result::Result<T, PageError>;
