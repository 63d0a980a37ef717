//! What every portal answer carries, on the real binary: the security
//! headers on every page (signed in or not, errors included), no inline
//! script anywhere, `__Host-` cookies and HSTS with https.

mod common;

use anyhow::{Context, ensure};
use common::{Options, PASSWORD, TestApp, csrf_in, set_cookie};
use saas_testkit::web::{check_headers, check_no_inline, check_page};

#[tokio::test]
async fn every_page_carries_the_security_headers() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let anonymous = TestApp::client()?;
    for path in [
        "/login",
        "/login?next=/tokens",
        "/signup",
        "/password/forgot",
        "/password/reset?token=0123",
        "/verify?token=0123",
        "/signup/done",
        "/no/such/page",
        "/instances",
        "/api/v1/plans",
        "/api/openapi.json",
        "/static/portal.css",
        "/static/portal.js",
        "/healthz",
    ] {
        let response = anonymous.get(app.url(path)).send().await?;
        check_headers(path, &response, false)?;
        check_page(path, response).await?;
    }
    let customer = app.customer("headers@example.com").await?;
    let (id, _) = customer.create_instance("headers1").await?;
    for path in [
        "/instances".to_owned(),
        "/instances/new".to_owned(),
        format!("/instances/{id}"),
        format!("/instances/{id}?done=backup"),
        "/tokens".to_owned(),
        "/api/v1/instances".to_owned(),
        format!("/api/v1/instances/{id}"),
    ] {
        let response = customer.client.get(app.url(&path)).send().await?;
        ensure!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        check_headers(&path, &response, false)?;
        check_page(&path, response).await?;
    }
    // Error answers of forms carry them too.
    let error = customer.post_form("/tokens", &[("name", "")]).await?;
    check_headers("/tokens (invalid)", &error, false)?;
    // Every template, not only the pages visited, is free of inline script.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        check_no_inline(
            &path.display().to_string(),
            &std::fs::read_to_string(&path)?,
        )?;
    }
    Ok(())
}

#[tokio::test]
async fn with_https_cookies_are_host_only_and_hsts_is_sent() -> anyhow::Result<()> {
    let app = TestApp::start_with(Options {
        extra_env: vec![("PUBLIC_SCHEME".into(), "https".into())],
        ..Options::default()
    })
    .await?;
    // Secure cookies are not sent back over the test's plain http, so the
    // client here carries them by hand, as a browser over https would.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let page = client.get(app.url("/signup")).send().await?;
    let (pair, _) = set_cookie(&page, "__Host-saas_portal_csrf").context("no CSRF cookie")?;
    let csrf = csrf_in(&page.text().await?)?;
    let signed_up = client
        .post(app.url("/signup"))
        .header("cookie", &pair)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "https@example.com"),
            ("company_name", "Acme"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    ensure!(signed_up.status() == 303, "sign-up: {}", signed_up.status());
    let page = client.get(app.url("/login")).send().await?;
    check_headers("/login", &page, true)?;
    let (csrf_pair, csrf_header) =
        set_cookie(&page, "__Host-saas_portal_csrf").context("no __Host- CSRF cookie")?;
    ensure!(
        csrf_header.contains("Secure")
            && csrf_header.contains("Path=/")
            && !csrf_header.contains("Domain"),
        "{csrf_header}"
    );
    let csrf = csrf_in(&page.text().await?)?;
    let signed_in = client
        .post(app.url("/login"))
        .header("cookie", &csrf_pair)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "https@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    ensure!(signed_in.status() == 303, "login: {}", signed_in.status());
    check_headers("/login (POST)", &signed_in, true)?;
    let (session_pair, session_header) =
        set_cookie(&signed_in, "__Host-saas_portal_session").context("no __Host- session")?;
    ensure!(
        session_header.contains("Secure")
            && session_header.contains("HttpOnly")
            && session_header.contains("Path=/")
            && !session_header.contains("Domain"),
        "{session_header}"
    );
    let page = client
        .get(app.url("/instances"))
        .header("cookie", &session_pair)
        .send()
        .await?;
    ensure!(page.status() == 200, "instances: {}", page.status());
    check_headers("/instances", &page, true)?;
    // A cookie without the prefix (as a tenant's site could plant for the
    // parent domain) is not the portal's.
    let planted = client
        .get(app.url("/instances"))
        .header("cookie", session_pair.replace("__Host-", ""))
        .send()
        .await?;
    ensure!(
        planted.status() == 303,
        "planted cookie: {}",
        planted.status()
    );
    Ok(())
}
