//! Against the real binary: malformed forms, queries and JSON answer in the
//! portal's own error format naming the field; failed bearer tokens are
//! throttled per address; a password reset ends the customer's sessions.

mod common;

use anyhow::{Context, ensure};
use common::{Customer, PASSWORD, TestApp, csrf_in};
use reqwest::Method;
use serde_json::{Value, json};

/// An HTML error page (never axum's plain text) naming `field`, with a 4xx.
async fn page_names(response: reqwest::Response, status: u16, field: &str) -> anyhow::Result<()> {
    let got = response.status();
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.text().await?;
    ensure!(got == status, "expected {status}, got {got}: {body}");
    ensure!(kind.starts_with("text/html"), "content type {kind}: {body}");
    ensure!(
        body.contains(&format!("data-field=\"{field}\"")) && body.contains(&format!("`{field}`")),
        "{field} not named: {body}"
    );
    Ok(())
}

/// The API's JSON error naming `field`, with a 4xx.
async fn json_names(response: reqwest::Response, status: u16, field: &str) -> anyhow::Result<()> {
    let got = response.status();
    let body: Value = response.json().await.context("not JSON")?;
    ensure!(got == status, "expected {status}, got {got}: {body}");
    ensure!(
        body["error"]["code"] == "invalid" && body["error"]["field"] == field,
        "{field} not named: {body}"
    );
    ensure!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(field)),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn malformed_web_forms_and_queries_get_a_page_naming_the_field() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("form@example.com").await?;
    // Missing field.
    let missing = customer.post_form("/tokens", &[]).await?;
    page_names(missing, 422, "name").await?;
    let missing = customer
        .post_form("/instances", &[("subdomain", "shop1")])
        .await?;
    page_names(missing, 422, "admin_password").await?;
    // Wrong shape: a list where one text value is expected (the web forms
    // hold only text, so a repeated field is how their type goes wrong).
    let repeated = customer
        .post_form("/tokens", &[("name", "a"), ("name", "b")])
        .await?;
    page_names(repeated, 422, "name").await?;
    let repeated = customer
        .client
        .get(app.url("/login?next=/a&next=/b"))
        .send()
        .await?;
    page_names(repeated, 422, "next").await?;
    // Not a form at all.
    let not_form = customer
        .client
        .post(app.url("/tokens"))
        .header("content-type", "text/plain")
        .body("name=x")
        .send()
        .await?;
    ensure!(
        not_form.status() == 400,
        "text/plain: {}",
        not_form.status()
    );
    let body = not_form.text().await?;
    ensure!(body.contains("id=\"error-message\""), "{body}");
    // Nothing was created by any of it.
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens")
        .fetch_one(&app.pool)
        .await?;
    ensure!(tokens == 0, "{tokens} tokens created");
    Ok(())
}

#[tokio::test]
async fn malformed_api_input_gets_the_json_error_naming_the_field() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("json@example.com").await?;
    // Wrong type.
    let wrong = customer
        .api(
            Method::POST,
            "/api/v1/instances",
            Some(json!({ "subdomain": 5, "admin_password": PASSWORD })),
        )
        .await?;
    json_names(wrong, 422, "subdomain").await?;
    let wrong = customer
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": ["x"] })),
        )
        .await?;
    json_names(wrong, 422, "name").await?;
    // Missing field.
    let missing = customer
        .api(
            Method::POST,
            "/api/v1/instances",
            Some(json!({ "subdomain": "shop1" })),
        )
        .await?;
    json_names(missing, 422, "admin_password").await?;
    // A malformed query: a repeated field.
    let (id, _) = customer.create_instance("shop2").await?;
    let repeated = customer
        .api(
            Method::DELETE,
            &format!("/api/v1/instances/{id}?confirm=shop2&confirm=x"),
            None,
        )
        .await?;
    json_names(repeated, 422, "confirm").await?;
    // Not JSON at all.
    let garbage = customer
        .client
        .post(customer.url("/api/v1/tokens"))
        .header("x-csrf-token", &customer.csrf)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await?;
    let status = garbage.status();
    let body: Value = garbage.json().await?;
    ensure!(
        status == 400 && body["error"]["code"] == "invalid",
        "{status} {body}"
    );
    let instances: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&app.pool)
        .await?;
    ensure!(instances == 1, "{instances} instances");
    Ok(())
}

#[tokio::test]
async fn failed_api_tokens_are_throttled_per_address() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("bearer@example.com").await?;
    let created: Value = customer
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": "ci" })),
        )
        .await?
        .json()
        .await?;
    let secret = created["token"]["secret"]
        .as_str()
        .context("no secret")?
        .to_owned();
    // Each client connects from its own loopback address.
    let attacking = TestApp::client_from("127.0.0.2")?;
    let elsewhere = TestApp::client_from("127.0.0.3")?;
    let call = |token: &str, from: &str| {
        let client = if from == "attacker" {
            &attacking
        } else {
            &elsewhere
        };
        client
            .get(app.url("/api/v1/instances"))
            .bearer_auth(token)
            .send()
    };
    let attacker = "attacker";
    for attempt in 1..=20 {
        let response = call(&format!("osc_wrong{attempt}"), attacker).await?;
        ensure!(
            response.status() == 401,
            "failure {attempt}: {}",
            response.status()
        );
    }
    let throttled = call("osc_wrong21", attacker).await?;
    ensure!(throttled.status() == 429, "21st: {}", throttled.status());
    let retry: u64 = throttled
        .headers()
        .get("retry-after")
        .context("no Retry-After")?
        .to_str()?
        .parse()?;
    ensure!(retry > 0 && retry <= 900, "Retry-After {retry}");
    let body: Value = throttled.json().await?;
    ensure!(body["error"]["code"] == "throttled", "{body}");
    // While throttled, even a good token from that address waits.
    let good_there = call(&secret, attacker).await?;
    ensure!(good_there.status() == 429, "{}", good_there.status());
    // Other addresses are not affected.
    let good_elsewhere = call(&secret, "elsewhere").await?;
    ensure!(
        good_elsewhere.status() == 200,
        "{}",
        good_elsewhere.status()
    );
    let bad_elsewhere = call("osc_wrong", "elsewhere").await?;
    ensure!(bad_elsewhere.status() == 401, "{}", bad_elsewhere.status());
    Ok(())
}

#[tokio::test]
async fn a_password_reset_ends_the_other_sessions() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let email = "reset@example.com";
    let first = app.customer(email).await?;
    let mut second = Customer {
        client: TestApp::client()?,
        base: app.base.clone(),
        email: email.to_owned(),
        csrf: String::new(),
    };
    second.login(PASSWORD).await?;
    for session in [&first, &second] {
        let page = session.client.get(app.url("/instances")).send().await?;
        ensure!(page.status() == 200, "before the reset: {}", page.status());
    }
    // The reset, through the emailed link, from a third browser.
    let third = TestApp::client()?;
    let page = third
        .get(app.url("/password/forgot"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = csrf_in(&page)?;
    let forgot = third
        .post(app.url("/password/forgot"))
        .form(&[("csrf_token", csrf.as_str()), ("email", email)])
        .send()
        .await?;
    ensure!(forgot.status() == 200, "forgot: {}", forgot.status());
    let link = app.link_in_outbox(email, "/password/reset?token=").await?;
    let page = third.get(&link).send().await?;
    ensure!(page.status() == 200, "reset form: {}", page.status());
    let csrf = csrf_in(&page.text().await?)?;
    let token = link.rsplit('=').next().context("no token")?;
    let new_password = "quartz-meadow-lantern-77";
    let reset = third
        .post(app.url("/password/reset"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("token", token),
            ("password", new_password),
        ])
        .send()
        .await?;
    ensure!(reset.status() == 200, "reset: {}", reset.status());
    // Both older sessions are refused, on pages and on the API.
    for session in [&first, &second] {
        let page = session.client.get(app.url("/instances")).send().await?;
        ensure!(
            page.status() == 303,
            "old session still works: {}",
            page.status()
        );
        let api = session
            .client
            .get(app.url("/api/v1/instances"))
            .send()
            .await?;
        ensure!(
            api.status() == 401,
            "old session on the API: {}",
            api.status()
        );
    }
    // Signing in again, at once, with the new password works and lasts.
    second.login(new_password).await?;
    let page = second.client.get(app.url("/instances")).send().await?;
    ensure!(page.status() == 200, "new session: {}", page.status());
    let old = first.client.get(app.url("/instances")).send().await?;
    ensure!(
        old.status() == 303,
        "old session came back: {}",
        old.status()
    );
    Ok(())
}

/// `next` after sign-in is a same-origin path or the instances page: a tab
/// (which browsers drop), a backslash or a scheme never sends the customer
/// off-site, and CR/LF never break the redirect into a 500.
#[tokio::test]
async fn sign_in_never_redirects_off_site() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let email = "next@example.com";
    app.customer(email).await?;
    for (next, expected) in [
        ("/instances/x?done=backup", "/instances/x?done=backup"),
        ("/\t/evil.example", "/instances"),
        ("//evil.example", "/instances"),
        ("/\\evil.example", "/instances"),
        ("https://evil.example/", "/instances"),
        ("/\r\nSet-Cookie: pwned=1", "/instances"),
        ("/\u{0b}/evil.example", "/instances"),
    ] {
        let client = TestApp::client()?;
        let query = url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>();
        let page = client
            .get(app.url(&format!("/login?next={query}")))
            .send()
            .await?;
        ensure!(
            page.status() == 200,
            "login page with next {next:?}: {}",
            page.status()
        );
        let csrf = csrf_in(&page.text().await?)?;
        let response = client
            .post(app.url("/login"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", email),
                ("password", PASSWORD),
                ("next", next),
            ])
            .send()
            .await?;
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        ensure!(
            response.status() == 303 && location == expected,
            "next {next:?}: {} to {location:?}",
            response.status()
        );
    }
    Ok(())
}
