//! Accounts against the real binary: sign-up that does not reveal taken
//! addresses, single-use expiring links, CSRF, throttling, sign-in/out.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use common::{PASSWORD, TestApp, csrf_in, signup};

#[tokio::test]
async fn sign_up_with_a_taken_email_looks_the_same() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let client = TestApp::client()?;
    // Warm up (first hash, connections) so timings compare like with like.
    signup(&client, &app, "warmup@example.com", "Warm", PASSWORD).await?;
    let mut fresh = Vec::new();
    let mut taken = Vec::new();
    let mut responses = Vec::new();
    for round in 0..4 {
        let email = format!("owner{round}@example.com");
        let started = Instant::now();
        let first = signup(&client, &app, &email, "Acme", PASSWORD).await?;
        fresh.push(started.elapsed());
        let started = Instant::now();
        let second = signup(&client, &app, &email, "Other Co", "another-pass-phrase-9").await?;
        taken.push(started.elapsed());
        let describe = |r: reqwest::Response| async move {
            let status = r.status();
            let location = r.headers().get("location").cloned();
            (status, location, r.text().await.unwrap_or_default())
        };
        responses.push((describe(first).await, describe(second).await));
    }
    for (first, second) in &responses {
        ensure!(first == second, "responses differ: {first:?} vs {second:?}");
        ensure!(first.0 == 303, "sign-up answered {:?}", first.0);
    }
    fresh.sort();
    taken.sort();
    let (a, b) = (fresh[fresh.len() / 2], taken[taken.len() / 2]);
    let ratio = a.as_secs_f64().max(b.as_secs_f64()) / a.as_secs_f64().min(b.as_secs_f64());
    ensure!(
        ratio < 3.0,
        "median timings differ too much: new {a:?}, taken {b:?}"
    );
    // The existing owner hears about it; the account is unchanged.
    let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM customers WHERE email = 'owner0@example.com' AND company_name = 'Acme'")
        .fetch_one(&app.pool)
        .await?;
    ensure!(customers == 1);
    let purposes: Vec<String> = sqlx::query_scalar(
        "SELECT purpose FROM email_outbox WHERE to_address = 'owner0@example.com' ORDER BY created_at",
    )
    .fetch_all(&app.pool)
    .await?;
    ensure!(
        purposes == ["verify_email", "sign_up_existing"],
        "{purposes:?}"
    );
    Ok(())
}

#[tokio::test]
async fn verification_links_are_single_use_and_expire() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let client = TestApp::client()?;
    signup(&client, &app, "v1@example.com", "Acme", PASSWORD).await?;
    let link = app
        .link_in_outbox("v1@example.com", "/verify?token=")
        .await?;
    ensure!(client.get(&link).send().await?.status() == 200);
    let again = client.get(&link).send().await?;
    ensure!(again.status() == 410, "reused link: {}", again.status());

    signup(&client, &app, "v2@example.com", "Acme", PASSWORD).await?;
    let link = app
        .link_in_outbox("v2@example.com", "/verify?token=")
        .await?;
    sqlx::query("UPDATE customer_tokens SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await?;
    ensure!(
        client.get(&link).send().await?.status() == 410,
        "expired link worked"
    );
    let verified: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT email_verified_at FROM customers WHERE email = 'v2@example.com'",
    )
    .fetch_one(&app.pool)
    .await?;
    ensure!(verified.is_none());
    // Tokens are stored hashed: the secret in the link is not in the table.
    let secret = link.rsplit('=').next().context("no token")?;
    let clear: i64 =
        sqlx::query_scalar("SELECT count(*) FROM customer_tokens WHERE token_hash = $1")
            .bind(secret)
            .fetch_one(&app.pool)
            .await?;
    ensure!(clear == 0);
    Ok(())
}

async fn request_reset(
    app: &TestApp,
    client: &reqwest::Client,
    email: &str,
) -> anyhow::Result<String> {
    let page = client
        .get(app.url("/password/forgot"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = csrf_in(&page)?;
    let response = client
        .post(app.url("/password/forgot"))
        .form(&[("csrf_token", csrf.as_str()), ("email", email)])
        .send()
        .await?;
    ensure!(response.status() == 200, "forgot: {}", response.status());
    app.link_in_outbox(email, "/password/reset?token=").await
}

async fn submit_reset(
    client: &reqwest::Client,
    link: &str,
    password: &str,
) -> anyhow::Result<reqwest::StatusCode> {
    let form = client.get(link).send().await?;
    if form.status() != 200 {
        return Ok(form.status());
    }
    let page = form.text().await?;
    let csrf = csrf_in(&page)?;
    let token = link.rsplit('=').next().context("no token")?;
    let base = link.split("/password").next().context("no base")?;
    Ok(client
        .post(format!("{base}/password/reset"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("token", token),
            ("password", password),
        ])
        .send()
        .await?
        .status())
}

#[tokio::test]
async fn reset_links_are_single_use_and_expire() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let mut customer = app.customer("r@example.com").await?;
    let client = TestApp::client()?;
    let link = request_reset(&app, &client, "r@example.com").await?;
    ensure!(submit_reset(&client, &link, "a-brand-new-passphrase").await? == 200);
    let token = link.rsplit('=').next().context("no token")?;
    // The same link again: the form is gone, and a direct POST is refused.
    ensure!(client.get(&link).send().await?.status() == 410);
    let page = client.get(app.url("/login")).send().await?.text().await?;
    let csrf = csrf_in(&page)?;
    let replay = client
        .post(app.url("/password/reset"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("token", token),
            ("password", "yet-another-passphrase"),
        ])
        .send()
        .await?;
    ensure!(
        replay.status() == 410,
        "replayed reset: {}",
        replay.status()
    );
    customer.login("a-brand-new-passphrase").await?;

    let expired = request_reset(&app, &client, "r@example.com").await?;
    sqlx::query("UPDATE customer_tokens SET expires_at = now() - interval '1 second' WHERE purpose = 'reset_password'")
        .execute(&app.pool)
        .await?;
    ensure!(submit_reset(&client, &expired, "expired-link-passphrase").await? == 410);
    // Unknown addresses get the same answer and no email.
    let unknown = client
        .get(app.url("/password/forgot"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = csrf_in(&unknown)?;
    let response = client
        .post(app.url("/password/forgot"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "nobody@example.com"),
        ])
        .send()
        .await?;
    ensure!(response.status() == 200);
    ensure!(
        saas_core::outbox::list(&app.pool, Some("nobody@example.com"), 5, 0)
            .await?
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn forms_without_a_csrf_token_are_refused() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("c@example.com").await?;
    let bare = TestApp::client()?;
    // Anonymous forms: no cookie, or a token that does not match it.
    let no_cookie = bare
        .post(app.url("/login"))
        .form(&[
            ("csrf_token", "x"),
            ("email", "c@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    ensure!(
        no_cookie.status() == 403,
        "login without CSRF: {}",
        no_cookie.status()
    );
    let signup_page = bare.get(app.url("/signup")).send().await?;
    ensure!(signup_page.headers().get_all("set-cookie").iter().any(|c| {
        c.to_str().is_ok_and(|c| {
            c.contains("saas_portal_csrf=") && c.contains("HttpOnly") && c.contains("SameSite=Lax")
        })
    }));
    let forged = bare
        .post(app.url("/signup"))
        .form(&[
            ("csrf_token", "0".repeat(64).as_str()),
            ("email", "f@example.com"),
            ("company_name", "F"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    ensure!(forged.status() == 403);
    // Signed-in forms and API calls made with the session cookie.
    for path in ["/instances", "/logout", "/tokens"] {
        let response = customer
            .client
            .post(customer.url(path))
            .form(&[
                ("name", "x"),
                ("subdomain", "shop1"),
                ("admin_password", PASSWORD),
            ])
            .send()
            .await?;
        ensure!(
            response.status() == 403,
            "{path} without CSRF: {}",
            response.status()
        );
    }
    let api = customer
        .client
        .post(customer.url("/api/v1/tokens"))
        .json(&serde_json::json!({ "name": "x" }))
        .send()
        .await?;
    ensure!(
        api.status() == 403,
        "API POST with cookie, no header: {}",
        api.status()
    );
    let body: serde_json::Value = api.json().await?;
    ensure!(body["error"]["code"] == "csrf");
    let ok = customer
        .api(
            reqwest::Method::POST,
            "/api/v1/tokens",
            Some(serde_json::json!({ "name": "x" })),
        )
        .await?;
    ensure!(ok.status() == 201, "API POST with header: {}", ok.status());
    Ok(())
}

#[tokio::test]
async fn session_cookie_is_httponly_lax_and_logout_ends_it() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let client = TestApp::client()?;
    signup(&client, &app, "s@example.com", "Acme", PASSWORD).await?;
    let page = client.get(app.url("/login")).send().await?.text().await?;
    let csrf = csrf_in(&page)?;
    let login = client
        .post(app.url("/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "s@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    ensure!(login.status() == 303);
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|c| c.to_str().ok())
        .find(|c| c.starts_with("saas_portal_session="))
        .context("no session cookie")?
        .to_owned();
    ensure!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && !cookie.contains("Secure"),
        "{cookie}"
    );
    let page = client.get(app.url("/instances")).send().await?;
    ensure!(page.status() == 200);
    let csrf = csrf_in(&page.text().await?)?;
    let out = client
        .post(app.url("/logout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await?;
    ensure!(out.status() == 303);
    let after = client.get(app.url("/instances")).send().await?;
    ensure!(after.status() == 303, "still signed in after logout");
    Ok(())
}

#[tokio::test]
async fn login_is_throttled_with_retry_after() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let client = TestApp::client()?;
    signup(&client, &app, "t@example.com", "Acme", PASSWORD).await?;
    let page = client.get(app.url("/login")).send().await?.text().await?;
    let csrf = csrf_in(&page)?;
    let mut last = None;
    for _ in 0..11 {
        let response = client
            .post(app.url("/login"))
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", "t@example.com"),
                ("password", "wrong-password-123"),
            ])
            .send()
            .await?;
        last = Some(response);
    }
    let last = last.context("no attempt")?;
    ensure!(
        last.status() == 429,
        "11th wrong password: {}",
        last.status()
    );
    let retry: u64 = last
        .headers()
        .get("retry-after")
        .context("no Retry-After")?
        .to_str()?
        .parse()?;
    ensure!(retry > 0 && retry <= 900, "Retry-After {retry}");
    // Even the right password waits until the window passes.
    let right = client
        .post(app.url("/login"))
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "t@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    ensure!(right.status() == 429);
    let _ = Duration::from_secs(retry);
    Ok(())
}

#[tokio::test]
async fn sign_up_names_the_field_at_fault() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let client = TestApp::client()?;
    for (email, company, password, field) in [
        ("not-an-email", "Acme", PASSWORD, "email"),
        ("a@example.com", "", PASSWORD, "company_name"),
        ("a@example.com", "Acme", "short", "password"),
        ("a@example.com", "Acme", "password1234", "password"),
    ] {
        let response = signup(&client, &app, email, company, password).await?;
        ensure!(response.status() == 422, "{field}: {}", response.status());
        let body = response.text().await?;
        ensure!(
            body.contains(&format!("data-field=\"{field}\"")),
            "{field} not named"
        );
    }
    Ok(())
}
