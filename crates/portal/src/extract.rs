//! Form, query and JSON readers that answer malformed input in the portal's
//! own error format instead of axum's plain-text rejections: an HTML page for
//! the web UI ([`Form`], [`Query`]), `{"error": {code, message, field}}` for
//! the API ([`ApiQuery`], [`json_body`]). The field at fault is named when
//! serde knows it (through `serde_path_to_error`).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::{AppError, PageError};

/// The field serde blamed: the path to the value at fault, or the field a
/// struct-level message names (`missing field `x``, `duplicate field `x``).
fn field_of(path: &serde_path_to_error::Path, message: &str) -> Option<String> {
    let path = path.to_string();
    if !path.is_empty() && path != "." && path != "?" {
        return Some(path);
    }
    ["missing field `", "duplicate field `", "unknown field `"]
        .iter()
        .find_map(|marker| {
            let start = message.find(marker)? + marker.len();
            let len = message[start..].find('`')?;
            Some(message[start..start + len].to_owned())
        })
        .filter(|f| !f.is_empty())
}

fn malformed(status: StatusCode, field: Option<String>, what: &str, reason: &str) -> AppError {
    let message = match &field {
        Some(field) => format!("{what}: field `{field}`: {reason}"),
        None => format!("{what}: {reason}"),
    };
    AppError::Malformed {
        status,
        field,
        message,
    }
}

/// What no portal input may hold: NUL (PostgreSQL refuses it in text, so
/// it used to end as a 500) or any other control character (no portal
/// field is multi-line).
pub fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

/// 422 naming `field` (shown escaped when the name itself is hostile).
pub fn control_characters(field: &str, what: &str) -> AppError {
    let field = if has_control(field) {
        field.escape_debug().to_string()
    } else {
        field.to_owned()
    };
    malformed(
        StatusCode::UNPROCESSABLE_ENTITY,
        Some(field),
        what,
        "must not contain control characters (such as NUL, tabs or line breaks)",
    )
}

/// Fields whose value is made safe where it is read instead of refused:
/// `next` falls back to the default page when it is anything but a plain
/// same-origin path (`crate::auth::safe_next`).
const SANITIZED_WHERE_READ: &[&str] = &["next"];

/// Reads `application/x-www-form-urlencoded` pairs (a body or a query string).
pub fn parse_urlencoded<T: DeserializeOwned>(input: &[u8], what: &str) -> Result<T, AppError> {
    for (name, value) in url::form_urlencoded::parse(input) {
        let sanitized = SANITIZED_WHERE_READ.contains(&name.as_ref());
        if has_control(&name) || (has_control(&value) && !sanitized) {
            return Err(control_characters(&name, what));
        }
    }
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(input));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let reason = err.inner().to_string();
        let field = field_of(err.path(), &reason);
        malformed(StatusCode::UNPROCESSABLE_ENTITY, field, what, &reason)
    })
}

/// Reads a JSON body: 400 when it is not JSON, 422 when a string holds a
/// control character or a field is missing or has the wrong type.
pub fn json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let what = "invalid JSON body";
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|err| malformed(StatusCode::BAD_REQUEST, None, what, &err.to_string()))?;
    if let Some(field) = control_in(&value, "") {
        return Err(control_characters(&field, what));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let reason = err.inner().to_string();
        let field = field_of(err.path(), &reason);
        malformed(StatusCode::UNPROCESSABLE_ENTITY, field, what, &reason)
    })
}

/// The path (`name`, `a.b`, `list[2]`) of the first key or string in
/// `value` that holds a control character.
fn control_in(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(text) => has_control(text).then(|| path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| control_in(item, &format!("{path}[{i}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let here = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if has_control(key) {
                return Some(here);
            }
            control_in(item, &here)
        }),
        _ => None,
    }
}

fn is_form(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

async fn read_form<T: DeserializeOwned, S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<T, AppError> {
    if !is_form(req.headers()) {
        return Err(malformed(
            StatusCode::BAD_REQUEST,
            None,
            "invalid form",
            "expected Content-Type application/x-www-form-urlencoded",
        ));
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::TooLarge {
                field: "body",
                message: "the form is too large".to_owned(),
            }
        } else {
            malformed(
                StatusCode::BAD_REQUEST,
                None,
                "invalid form",
                "the body could not be read",
            )
        }
    })?;
    parse_urlencoded(&bytes, "invalid form")
}

fn read_query<T: DeserializeOwned>(parts: &Parts) -> Result<T, AppError> {
    let query = parts.uri.query().unwrap_or("");
    parse_urlencoded(query.as_bytes(), "invalid query")
}

/// A web form body; malformed input answers an HTML error page.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Form(read_form(req, state).await?))
    }
}

/// A web page's query; malformed input answers an HTML error page.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Query(read_query(parts)?))
    }
}

/// An API query; malformed input answers the JSON error.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiQuery(read_query(parts)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
    }

    #[test]
    fn json_names_the_wrong_typed_and_the_missing_field() {
        let err = json_body::<Body>(br#"{"name": 5, "count": 1}"#).err();
        assert_eq!(err.as_ref().and_then(AppError::field), Some("name"));
        let err = json_body::<Body>(br#"{"name": "a"}"#).err();
        assert_eq!(err.as_ref().and_then(AppError::field), Some("count"));
        let err = json_body::<Body>(b"{not json").err();
        assert_eq!(err.map(|e| e.status()), Some(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn control_characters_are_refused_naming_the_field() {
        let err = parse_urlencoded::<Body>(b"name=a%00b&count=1", "f").err();
        assert_eq!(
            err.as_ref().map(AppError::status),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
        assert_eq!(err.as_ref().and_then(AppError::field), Some("name"));
        #[derive(Debug, serde::Deserialize)]
        struct Next {
            next: String,
        }
        let next = parse_urlencoded::<Next>(b"next=/%09/evil", "f").map(|n| n.next);
        assert_eq!(next.ok().as_deref(), Some("/\t/evil"));
        let err = parse_urlencoded::<Body>(b"name=a&count=1&x%01=2", "f").err();
        assert_eq!(err.as_ref().and_then(AppError::field), Some("x\\u{1}"));
        let err = json_body::<Body>(br#"{"name": "a\u0000", "count": 1}"#).err();
        assert_eq!(err.as_ref().and_then(AppError::field), Some("name"));
        let err = json_body::<serde_json::Value>(br#"{"a": {"b": ["ok", "x\ty"]}}"#).err();
        assert_eq!(err.as_ref().and_then(AppError::field), Some("a.b[1]"));
        let err = json_body::<serde_json::Value>(br#"{"a": 1} trailing"#).err();
        assert_eq!(err.map(|e| e.status()), Some(StatusCode::BAD_REQUEST));
        assert!(json_body::<Body>(br#"{"name": "caf\u00e9", "count": 1}"#).is_ok());
    }

    #[test]
    fn forms_name_the_wrong_typed_missing_and_repeated_field() {
        let err = parse_urlencoded::<Body>(b"name=a&count=many", "f").err();
        assert_eq!(err.as_ref().and_then(AppError::field), Some("count"));
        let err = parse_urlencoded::<Body>(b"count=1", "f").err();
        assert_eq!(err.as_ref().and_then(AppError::field), Some("name"));
        let err = parse_urlencoded::<Body>(b"name=a&name=b&count=1", "f").err();
        assert_eq!(err.as_ref().and_then(AppError::field), Some("name"));
        let err = parse_urlencoded::<Body>(b"name=a&count=1", "f").err();
        assert!(err.is_none());
    }
}
