//! Request input that names the field at fault: query strings and forms as
//! [`Params`], JSON bodies as [`ApiJson`]. Malformed input is a 4xx naming
//! the field, never a 500 and never a bare rejection.

use std::collections::HashMap;
use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{Error, PageError, Result};

/// Malformed input refused by an extractor: JSON under `/api`, admin's error
/// page on the web routes (never axum's plain-text rejection).
#[derive(Debug)]
pub struct Rejection {
    pub error: Error,
    api: bool,
}

impl Rejection {
    fn new(uri: &Uri, error: Error) -> Self {
        let path = uri.path();
        Self {
            error,
            api: path == "/api" || path.starts_with("/api/"),
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        if self.api {
            self.error.into_response()
        } else {
            PageError(self.error).into_response()
        }
    }
}

impl From<Rejection> for PageError {
    fn from(rejection: Rejection) -> Self {
        PageError(rejection.error)
    }
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        rejection.error
    }
}

/// The longest free text accepted in any field, unless a field says less.
pub const MAX_TEXT: usize = 500;

/// Name/value pairs from a query string or an urlencoded form.
///
/// Pages are lenient the way browsers need (values trimmed, an empty one
/// absent). The JSON API's query strings are [`Params::strict`]: values
/// are taken as sent, so what its OpenAPI document says is exactly what is
/// accepted (no control characters, an empty number or id is invalid).
#[derive(Debug, Clone, Default)]
pub struct Params {
    fields: HashMap<String, String>,
    strict: bool,
}

impl Params {
    /// Decodes `application/x-www-form-urlencoded` text (a later field of
    /// the same name wins). A value that is not UTF-8 once decoded is refused
    /// naming its field, rather than read with replacement characters.
    pub fn parse(encoded: &[u8]) -> Result<Self> {
        let mut fields = HashMap::new();
        for pair in encoded.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &b""[..]),
            };
            let name = String::from_utf8(percent_decode(name)).map_err(|err| {
                Error::invalid(
                    String::from_utf8_lossy(err.as_bytes()),
                    "is not a field name (not UTF-8 text)",
                )
            })?;
            let value = String::from_utf8(percent_decode(value))
                .map_err(|_| Error::invalid(&name, "must be UTF-8 text"))?;
            fields.insert(name, value);
        }
        Ok(Self {
            fields,
            strict: false,
        })
    }

    /// [`Params::parse`] for the JSON API: a value with a control character
    /// is refused at once, and values are not trimmed.
    pub fn parse_strict(encoded: &[u8]) -> Result<Self> {
        let mut params = Self::parse(encoded)?;
        if let Some((name, _)) = params
            .fields
            .iter()
            .find(|(_, value)| value.chars().any(char::is_control))
        {
            return Err(Error::invalid(name, "must not contain control characters"));
        }
        params.strict = true;
        Ok(params)
    }

    /// The value: on pages trimmed, and an empty one counts as absent; in
    /// the API as sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        let value = self.fields.get(name).map(String::as_str);
        if self.strict {
            return value;
        }
        value.map(str::trim).filter(|v| !v.is_empty())
    }

    /// Optional text of at most `max` characters (empty: absent).
    pub fn opt_text(&self, name: &str, max: usize) -> Result<Option<String>> {
        match self.get(name) {
            None => Ok(None),
            Some(value) if self.strict && value.chars().count() > max => Err(Error::invalid(
                name,
                format!("must be at most {max} characters long"),
            )),
            Some(value) => check_text(name, value, max).map(|v| (!v.is_empty()).then_some(v)),
        }
    }

    /// Required, non-empty text of at most `max` characters.
    pub fn text(&self, name: &str, max: usize) -> Result<String> {
        self.opt_text(name, max)?
            .ok_or_else(|| Error::invalid(name, "must not be empty"))
    }

    pub fn opt_uuid(&self, name: &str) -> Result<Option<Uuid>> {
        self.opt_parse(name, "must be a UUID")
    }

    pub fn uuid(&self, name: &str) -> Result<Uuid> {
        self.opt_uuid(name)?
            .ok_or_else(|| Error::invalid(name, "must not be empty"))
    }

    /// An optional value parsed with `FromStr`; `expected` says what it must be.
    pub fn opt_parse<T: FromStr>(&self, name: &str, expected: &str) -> Result<Option<T>> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|_| Error::invalid(name, expected)),
        }
    }

    /// A whole number in `min..=max`, or `default` when absent.
    pub fn int_or(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64> {
        let expected = format!("must be a whole number from {min} to {max}");
        match self.opt_parse::<i64>(name, &expected)? {
            None => Ok(default),
            Some(value) if (min..=max).contains(&value) => Ok(value),
            Some(_) => Err(Error::invalid(name, expected)),
        }
    }

    /// A required whole number in `min..=max`.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<i64> {
        if self.get(name).is_none() {
            return Err(Error::invalid(name, "must not be empty"));
        }
        self.int_or(name, 0, min, max)
    }

    /// A checkbox: present and not `false`/`0`/`off`.
    pub fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| !matches!(v, "false" | "0" | "off"))
    }

    pub fn raw(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// `+` as a space and `%XX` as that byte; a `%` not followed by two hex
/// digits stays as it is (as browsers and `form_urlencoded` read it).
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let digits = input
                    .get(i + 1)
                    .copied()
                    .and_then(hex)
                    .zip(input.get(i + 2).copied().and_then(hex));
                if let Some((high, low)) = digits {
                    out.push((high * 16 + low) as u8);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    out
}

/// Text that is at most `max` characters and holds no control characters.
pub fn check_text(field: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} characters long"),
        ));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

/// Required text: not empty after trimming, at most `max` characters.
pub fn required_text(field: &str, value: &str, max: usize) -> Result<String> {
    let value = check_text(field, value, max)?;
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    Ok(value)
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Rejection> {
        let query = parts.uri.query().unwrap_or("").as_bytes();
        let path = parts.uri.path();
        let parsed = if path.starts_with("/api/") {
            Params::parse_strict(query)
        } else {
            Params::parse(query)
        };
        parsed.map_err(|err| Rejection::new(&parts.uri, err))
    }
}

/// An urlencoded form body as [`Params`].
pub struct FormParams(pub Params);

impl<S: Send + Sync> FromRequest<S> for FormParams {
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Rejection> {
        let uri = req.uri().clone();
        let body = Bytes::from_request(req, state).await.map_err(|err| {
            Rejection::new(
                &uri,
                Error::BadRequest(format!(
                    "the form body could not be read: {}",
                    err.body_text()
                )),
            )
        })?;
        let params = Params::parse(&body).map_err(|err| Rejection::new(&uri, err))?;
        Ok(FormParams(params))
    }
}

/// Path segments as `T` (strings, usually, parsed by the handler). A segment
/// that cannot be read, such as one that is not UTF-8 once decoded, is a 404
/// naming it.
pub struct Segments<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Segments<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Segments(value)),
            Err(rejection) => Err(Rejection::new(
                &parts.uri,
                Error::BadPath(segment_of(&rejection)),
            )),
        }
    }
}

/// The name of the path segment `rejection` is about, or `path`.
fn segment_of(rejection: &PathRejection) -> String {
    let PathRejection::FailedToDeserializePathParams(err) = rejection else {
        return "path".to_owned();
    };
    match err.kind() {
        ErrorKind::InvalidUtf8InPathParam { key }
        | ErrorKind::ParseErrorAtKey { key, .. }
        | ErrorKind::DeserializeError { key, .. } => key.clone(),
        _ => "path".to_owned(),
    }
}

/// A JSON body whose type errors name the field (422), syntax errors 400.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        if !is_json {
            return Err(Error::BadRequest(
                "send the body as JSON with Content-Type: application/json".to_owned(),
            ));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|err| Error::BadRequest(err.body_text()))?;
        parse_json(&body).map(ApiJson)
    }
}

/// Deserialises `body`, naming the field of a type error.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => Ok(value),
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            match inner.classify() {
                serde_json::error::Category::Data => {
                    let message = inner.to_string();
                    let message = message
                        .split(" at line ")
                        .next()
                        .unwrap_or(&message)
                        .to_owned();
                    let field = if path == "." {
                        backticked(&message).unwrap_or_else(|| "body".to_owned())
                    } else {
                        path
                    };
                    Err(Error::invalid(field, message))
                }
                _ => Err(Error::BadRequest(format!(
                    "the body is not valid JSON: {inner}"
                ))),
            }
        }
    }
}

/// The first `name` in "... `name` ...", how serde names a missing or unknown field.
fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

/// A resource id from the path; anything but a UUID is a 404.
pub struct Id(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| Error::NotFound("resource"))?;
        raw.parse().map(Id).map_err(|_| Error::NotFound("resource"))
    }
}

/// [`Id`] for pages: a bad id is an HTML 404.
pub struct PageId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PageId {
    type Rejection = crate::error::PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(PageId(Id::from_request_parts(parts, state).await?.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        limits: Limits,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Limits {
        users: i32,
    }

    fn field_of(body: &str) -> Option<String> {
        match parse_json::<Body>(body.as_bytes()) {
            Err(err) => err.field().map(str::to_owned),
            Ok(_) => None,
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        assert_eq!(
            field_of(r#"{"name": 5, "limits": {"users": 1}}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            field_of(r#"{"name": "a", "limits": {"users": "x"}}"#).as_deref(),
            Some("limits.users")
        );
        assert_eq!(
            field_of(r#"{"limits": {"users": 1}}"#).as_deref(),
            Some("name")
        );
        assert_eq!(
            field_of(r#"{"name": "a", "limits": {"users": 1}, "extra": 1}"#).as_deref(),
            Some("extra")
        );
        assert!(matches!(
            parse_json::<Body>(b"{not json"),
            Err(Error::BadRequest(_))
        ));
    }

    #[test]
    fn params_decode_like_form_urlencoded() {
        let params =
            Params::parse(b"a=1+2%2B3&b=%41%zz%4&&c&d=x&d=y&e%20f=%C3%A9").unwrap_or_default();
        assert_eq!(params.raw("a"), Some("1 2+3"));
        assert_eq!(params.raw("b"), Some("A%zz%4"));
        assert_eq!(params.raw("c"), Some(""));
        assert_eq!(params.raw("d"), Some("y"));
        assert_eq!(params.raw("e f"), Some("\u{e9}"));
    }

    #[test]
    fn values_that_are_not_utf8_name_their_field() {
        for encoded in [&b"q=ok&cursor=%FF%FE"[..], b"cursor=\xff", b"cursor=%E2%80"] {
            let field = Params::parse(encoded)
                .err()
                .and_then(|e| e.field().map(str::to_owned));
            assert_eq!(field.as_deref(), Some("cursor"), "{encoded:?}");
        }
        assert!(Params::parse(b"%FF=1").is_err());
    }

    #[test]
    fn params_check_fields() {
        let params = Params::parse(b"limit=abc&q=%20&name=x").unwrap_or_default();
        assert_eq!(
            params
                .int_or("limit", 50, 1, 200)
                .err()
                .and_then(|e| e.field().map(str::to_owned))
                .as_deref(),
            Some("limit")
        );
        assert_eq!(params.get("q"), None);
        assert!(params.text("missing", 10).is_err());
        assert_eq!(params.text("name", 10).ok().as_deref(), Some("x"));
    }
}
