//! Headers on every answer: a Content-Security-Policy without inline script
//! (pages load only their own `/static/` files, may be framed by nobody and
//! post forms only to themselves), `nosniff`, a same-origin referrer,
//! `Cache-Control: no-store` unless the route chose its own caching (so
//! signed-in pages and pages with tokens in them never land in a shared or
//! browser cache), and HSTS when the public scheme is https.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";
pub const REFERRER_POLICY: &str = "same-origin";
pub const STRICT_TRANSPORT_SECURITY: &str = "max-age=31536000";

/// Whether answers say `Strict-Transport-Security` (`PUBLIC_SCHEME=https`).
#[derive(Debug, Clone, Copy)]
pub struct Hsts(pub bool);

pub async fn security_headers(State(hsts): State<Hsts>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY,
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, REFERRER_POLICY);
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    if hsts.0 {
        set(
            headers,
            header::STRICT_TRANSPORT_SECURITY,
            STRICT_TRANSPORT_SECURITY,
        );
    }
    response
}
