//! What every page of admin and portal must carry, checked on real
//! answers: the security headers, and no inline script the
//! Content-Security-Policy would block.

use anyhow::ensure;

const CSP_PARTS: &[&str] = &[
    "default-src 'self'",
    "script-src 'self'",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "object-src 'none'",
];

/// The headers every answer carries: the CSP (no inline script, no
/// framing, forms to the same origin), `nosniff`, the referrer policy,
/// `no-store` except on `/static/` files, HSTS exactly when `https`.
pub fn check_headers(path: &str, response: &reqwest::Response, https: bool) -> anyhow::Result<()> {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let csp = header("content-security-policy");
    for part in CSP_PARTS {
        ensure!(csp.contains(part), "{path}: CSP {csp:?} lacks {part}");
    }
    ensure!(!csp.contains("unsafe-inline"), "{path}: CSP {csp:?}");
    ensure!(header("x-content-type-options") == "nosniff", "{path}");
    ensure!(header("referrer-policy") == "same-origin", "{path}");
    let cache = header("cache-control");
    if path.starts_with("/static/") {
        ensure!(
            cache.contains("max-age") && !cache.contains("no-store"),
            "{path}: cache {cache:?}"
        );
    } else {
        ensure!(cache.contains("no-store"), "{path}: cache {cache:?}");
    }
    let hsts = header("strict-transport-security");
    ensure!(
        hsts.contains("max-age=") == https,
        "{path}: HSTS {hsts:?} with https={https}"
    );
    Ok(())
}

/// No inline script, handler, `javascript:` URL or style attribute, which
/// the CSP would block.
pub fn check_no_inline(path: &str, html: &str) -> anyhow::Result<()> {
    let lower = html.to_lowercase();
    for (at, _) in lower.match_indices("<script") {
        let end = lower[at..].find('>').map_or(lower.len(), |end| at + end);
        let tag = &lower[at..end];
        ensure!(tag.contains(" src="), "{path}: inline <script>: {tag}");
    }
    ensure!(!lower.contains("javascript:"), "{path}: javascript: URL");
    ensure!(!lower.contains(" style="), "{path}: style attribute");
    for (at, _) in lower.match_indices(" on") {
        let name: String = lower[at + 3..]
            .chars()
            .take_while(char::is_ascii_lowercase)
            .collect();
        let after = lower[at + 3 + name.len()..].trim_start();
        ensure!(
            !(name.len() >= 3 && after.starts_with('=')),
            "{path}: inline event handler on{name}"
        );
    }
    Ok(())
}

/// [`check_no_inline`] for an HTML answer (other answers pass).
pub async fn check_page(path: &str, response: reqwest::Response) -> anyhow::Result<()> {
    let html = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let body = response.text().await?;
    if html {
        check_no_inline(path, &body)?;
    }
    Ok(())
}
