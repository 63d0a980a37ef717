//! One error type for the portal's edge: JSON `{"error": {code, message, field}}`
//! for the API, the same status with an HTML page for the web UI. Internal
//! causes are logged once here and never shown.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use saas_core::error_chain::Chain;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A body or query that could not be read into the expected shape:
    /// 400 when it is not decodable at all, 422 when a field is missing or
    /// has the wrong type (named when serde knows it).
    #[error("{message}")]
    Malformed {
        status: StatusCode,
        field: Option<String>,
        message: String,
    },
    #[error("not found")]
    NotFound,
    #[error("{message}")]
    Conflict {
        field: Option<&'static str>,
        message: String,
    },
    #[error("sign in first")]
    Unauthorized,
    #[error("the form expired or did not come from this site; reload the page and try again")]
    Csrf,
    #[error("too many attempts; try again in {} s", .0.as_secs())]
    Throttled(Duration),
    #[error("{message}")]
    TooLarge {
        field: &'static str,
        message: String,
    },
    #[error("{0} is unavailable right now; try again shortly")]
    Unavailable(&'static str),
    /// Too many password hashes at once (the hashing gate stayed full):
    /// 503 with `Retry-After`.
    #[error("the service is busy; try again in {} s", .0.as_secs().max(1))]
    Busy(Duration),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        AppError::Invalid {
            field,
            message: message.into(),
        }
    }

    pub fn conflict(field: Option<&'static str>, message: impl Into<String>) -> Self {
        AppError::Conflict {
            field,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Malformed { status, .. } => *status,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Unavailable(_) | AppError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AppError::Invalid { .. } => "invalid",
            AppError::Malformed { .. } => "invalid",
            AppError::NotFound => "not_found",
            AppError::Conflict { .. } => "conflict",
            AppError::Unauthorized => "unauthorized",
            AppError::Csrf => "csrf",
            AppError::Throttled(_) => "throttled",
            AppError::TooLarge { .. } => "too_large",
            AppError::Unavailable(_) => "unavailable",
            AppError::Busy(_) => "busy",
            AppError::Internal(_) => "internal",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            AppError::Invalid { field, .. } | AppError::TooLarge { field, .. } => Some(field),
            AppError::Conflict { field, .. } => *field,
            AppError::Malformed { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    fn log(&self) {
        if let AppError::Internal(err) = self {
            tracing::error!(error = %Chain(err.as_ref()), "request failed");
        }
    }

    fn extra_headers(&self, response: &mut Response) {
        if let AppError::Throttled(after) | AppError::Busy(after) = self
            && let Ok(value) = HeaderValue::from_str(&after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if matches!(self, AppError::Unauthorized) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portal\""),
            );
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        AppError::Internal(err.into())
    }
}

impl From<saas_core::auth::hashing::HashError> for AppError {
    fn from(err: saas_core::auth::hashing::HashError) -> Self {
        use saas_core::auth::hashing::HashError;
        match err {
            HashError::Busy { retry_after } => AppError::Busy(retry_after),
            HashError::Failed(reason) => AppError::Internal(anyhow::anyhow!(reason)),
        }
    }
}

impl From<redis::RedisError> for AppError {
    fn from(err: redis::RedisError) -> Self {
        tracing::warn!(error = %Chain(&err), "Redis call failed");
        AppError::Unavailable("the session store")
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let body = json!({
            "error": { "code": self.code(), "message": self.to_string(), "field": self.field() }
        });
        let mut response = (self.status(), axum::Json(body)).into_response();
        self.extra_headers(&mut response);
        response
    }
}

/// An [`AppError`] answered with an HTML page (web UI routes).
#[derive(Debug)]
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(err: AppError) -> Self {
        PageError(err)
    }
}

impl From<sqlx::Error> for PageError {
    fn from(err: sqlx::Error) -> Self {
        PageError(err.into())
    }
}

impl From<redis::RedisError> for PageError {
    fn from(err: redis::RedisError) -> Self {
        PageError(err.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let err = self.0;
        err.log();
        let page = crate::views::ErrorPage {
            status: err.status().as_u16(),
            message: err.to_string(),
            field: err.field().unwrap_or("").to_owned(),
        };
        let mut response = (err.status(), crate::views::render(&page)).into_response();
        err.extra_headers(&mut response);
        response
    }
}

/// Renders a template, or a plain 500 when it cannot be.
pub fn html(result: Result<String, askama::Error>) -> Response {
    match result {
        Ok(body) => Html(body).into_response(),
        Err(err) => {
            tracing::error!(error = %Chain(&err), "template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}
