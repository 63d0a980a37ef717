//! Admin's edge attacked from outside, against the real binary: an attacker
//! keeping an operator out, a replayed TOTP code, guessing the code that
//! turns the second factor off, spoofed client addresses, and the headers
//! and cookies of every page.

mod common;

use anyhow::{Context, ensure};
use common::{Browser, OWNER_EMAIL, OWNER_PASSWORD, TestApp, between};
use saas_testkit::web::{check_headers, check_no_inline, check_page};

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

async fn attack_mails(app: &TestApp) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT body_text FROM email_outbox WHERE to_address = $1 AND purpose = 'sign_in_attack'",
    )
    .bind(OWNER_EMAIL)
    .fetch_all(&app.pool)
    .await?)
}

#[tokio::test]
async fn an_attacker_cannot_keep_an_operator_out() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let attacker = app.browser_from("127.0.0.2")?;
    for attempt in 1..=8 {
        let status = attacker
            .login(OWNER_EMAIL, "wrong-password-123")
            .await?
            .status();
        let expected = if attempt <= 5 { 401 } else { 429 };
        ensure!(status == expected, "attempt {attempt}: {status}");
    }
    ensure!(
        attacker.login(OWNER_EMAIL, OWNER_PASSWORD).await?.status() == 429,
        "the attacking address got in with the right password"
    );
    // The operator, from another address, during the incident.
    let owner = app.browser_from("127.0.0.3")?;
    let response = owner.login(OWNER_EMAIL, OWNER_PASSWORD).await?;
    ensure!(response.status() == 303, "owner: {}", response.status());
    ensure!(owner.get("/").await?.status() == 200, "owner's dashboard");
    ensure!(
        attack_mails(&app).await?.is_empty(),
        "mailed after 5 failures"
    );
    // A second attacking address: ten failures, and the operator is told once.
    let second = app.browser_from("127.0.0.4")?;
    for _ in 0..5 {
        ensure!(
            second
                .login(OWNER_EMAIL, "wrong-password-123")
                .await?
                .status()
                == 401
        );
    }
    let third = app.browser_from("127.0.0.5")?;
    for _ in 0..5 {
        ensure!(
            third
                .login(OWNER_EMAIL, "wrong-password-123")
                .await?
                .status()
                == 401
        );
    }
    let mails = attack_mails(&app).await?;
    ensure!(mails.len() == 1, "attack mails: {mails:?}");
    ensure!(mails[0].contains("10 failed attempts"), "{}", mails[0]);
    ensure!(
        app.audit_count(
            "operator.sign_in_attacked",
            &format!("operator:{}", owner_id(&app).await?)
        )
        .await?
            == 1
    );
    // Still in, from yet another address (slowed, not refused).
    let later = app.browser_from("127.0.0.6")?;
    ensure!(later.login(OWNER_EMAIL, OWNER_PASSWORD).await?.status() == 303);
    Ok(())
}

async fn owner_id(app: &TestApp) -> anyhow::Result<uuid::Uuid> {
    Ok(
        sqlx::query_scalar("SELECT id FROM operators WHERE email = $1")
            .bind(OWNER_EMAIL)
            .fetch_one(&app.pool)
            .await?,
    )
}

/// Turns TOTP on for the owner in `browser`; returns the secret's bytes.
async fn enable_totp(browser: &Browser, at: i64) -> anyhow::Result<Vec<u8>> {
    let csrf = browser.csrf("/account").await?;
    let page = browser
        .post_form("/account/totp/start", &[("_csrf", csrf.as_str())])
        .await?
        .text()
        .await?;
    let secret = between(&page, "id=\"totp-secret\">", "<").context("no secret shown")?;
    let bytes = admin::auth::totp::base32_decode(&secret).context("bad secret")?;
    let code = admin::auth::totp::code_at(&bytes, at).context("no code")?;
    let confirmed = browser
        .post_form(
            "/account/totp/confirm",
            &[("_csrf", csrf.as_str()), ("code", code.as_str())],
        )
        .await?;
    ensure!(confirmed.status() == 200, "confirm: {}", confirmed.status());
    ensure!(
        confirmed.text().await?.contains("recovery-codes"),
        "TOTP not turned on"
    );
    Ok(bytes)
}

/// Password, then `code`, in a fresh browser: the second step's status.
async fn sign_in_with_code(app: &TestApp, ip: &str, code: &str) -> anyhow::Result<(u16, Browser)> {
    let browser = app.browser_from(ip)?;
    let response = browser.login(OWNER_EMAIL, OWNER_PASSWORD).await?;
    ensure!(response.status() == 303, "password: {}", response.status());
    let csrf = browser.csrf("/login/mfa").await?;
    let status = browser
        .post_form("/login/mfa", &[("_csrf", csrf.as_str()), ("code", code)])
        .await?
        .status()
        .as_u16();
    Ok((status, browser))
}

#[tokio::test]
async fn a_totp_code_works_once() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let now = unix_now();
    let secret = enable_totp(&owner, now).await?;
    let this_step = admin::auth::totp::code_at(&secret, now).context("code")?;
    let next_step = admin::auth::totp::code_at(&secret, now + 30).context("code")?;
    // The code that turned TOTP on cannot also sign in.
    let (status, _) = sign_in_with_code(&app, "127.0.0.2", &this_step).await?;
    ensure!(status == 401, "the confirming code signed in: {status}");
    // The next step's code signs in once (one step of clock drift is allowed)...
    let (status, first) = sign_in_with_code(&app, "127.0.0.2", &next_step).await?;
    ensure!(status == 303, "a fresh code: {status}");
    ensure!(first.get("/").await?.status() == 200);
    // ...and a second session with the same code is refused.
    let (status, second) = sign_in_with_code(&app, "127.0.0.3", &next_step).await?;
    ensure!(status == 401, "a replayed code signed in again: {status}");
    ensure!(second.get("/").await?.status() == 303, "the replay is in");
    let last_step: Option<i64> =
        sqlx::query_scalar("SELECT totp_last_step FROM operators WHERE email = $1")
            .bind(OWNER_EMAIL)
            .fetch_one(&app.pool)
            .await?;
    ensure!(last_step == Some(now / 30 + 1), "{last_step:?}");
    Ok(())
}

#[tokio::test]
async fn turning_the_second_factor_off_is_throttled_like_sign_in() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let now = unix_now();
    let secret = enable_totp(&owner, now).await?;
    let next = admin::auth::totp::code_at(&secret, now + 30).context("code")?;
    let (status, session) = sign_in_with_code(&app, "127.0.0.2", &next).await?;
    ensure!(status == 303, "sign-in: {status}");
    let csrf = session.csrf("/account").await?;
    for attempt in 1..=5 {
        let guess = format!("{:06}", (attempt * 7919) % 1_000_000);
        let status = session
            .post_form(
                "/account/totp/disable",
                &[("_csrf", csrf.as_str()), ("code", guess.as_str())],
            )
            .await?
            .status();
        ensure!(status == 422, "guess {attempt}: {status}");
    }
    let refused = session
        .post_form(
            "/account/totp/disable",
            &[("_csrf", csrf.as_str()), ("code", "123456")],
        )
        .await?;
    ensure!(refused.status() == 429, "6th guess: {}", refused.status());
    ensure!(refused.headers().contains_key("retry-after"));
    // Even a valid code waits: guessing gains nothing.
    let later = admin::auth::totp::code_at(&secret, now + 60).context("code")?;
    let valid = session
        .post_form(
            "/account/totp/disable",
            &[("_csrf", csrf.as_str()), ("code", later.as_str())],
        )
        .await?;
    ensure!(
        valid.status() == 429,
        "valid code while throttled: {}",
        valid.status()
    );
    let enabled: bool =
        sqlx::query_scalar("SELECT totp_enabled_at IS NOT NULL FROM operators WHERE email = $1")
            .bind(OWNER_EMAIL)
            .fetch_one(&app.pool)
            .await?;
    ensure!(enabled, "the second factor was turned off");
    Ok(())
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_are_ignored() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    // Rotating X-Forwarded-For does not escape the per-address limit.
    let browser = app.browser_from("127.0.0.2")?;
    let mut throttled = None;
    for attempt in 0..40 {
        let csrf = browser.csrf("/login").await?;
        let spoofed = format!("198.51.100.{attempt}");
        let response = browser
            .client
            .post(browser.url("/login"))
            .header("x-forwarded-for", &spoofed)
            .header("x-real-ip", &spoofed)
            .form(&[
                ("_csrf", csrf.as_str()),
                ("email", format!("user{attempt}@example.com").as_str()),
                ("password", "wrong-password-123"),
            ])
            .send()
            .await?;
        if response.status() == 429 {
            throttled = Some(attempt);
            break;
        }
        ensure!(
            response.status() == 401,
            "attempt {attempt}: {}",
            response.status()
        );
    }
    ensure!(
        throttled == Some(30),
        "throttled at {throttled:?}, not after 30 attempts"
    );
    // The audit log names the connection's address, not the header.
    let owner = app.browser_from("127.0.0.3")?;
    let csrf = owner.csrf("/login").await?;
    let response = owner
        .client
        .post(owner.url("/login"))
        .header("x-forwarded-for", "203.0.113.99")
        .form(&[
            ("_csrf", csrf.as_str()),
            ("email", OWNER_EMAIL),
            ("password", OWNER_PASSWORD),
        ])
        .send()
        .await?;
    ensure!(response.status() == 303);
    let address: Option<String> = sqlx::query_scalar(
        "SELECT host(address) FROM audit_log WHERE action = 'operator.login' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await?;
    ensure!(address.as_deref() == Some("127.0.0.3"), "{address:?}");
    Ok(())
}

#[tokio::test]
async fn every_page_carries_the_security_headers() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let anonymous = app.browser();
    for path in [
        "/login",
        "/login/mfa",
        "/",
        "/no/such/page",
        "/api/v1/tenants",
        "/static/admin.css",
        "/static/admin.js",
        "/healthz",
    ] {
        let response = anonymous.get(path).await?;
        check_headers(path, &response, false)?;
        check_page(path, response).await?;
    }
    let owner = app.owner().await?;
    let seed = app.seed("basic").await?;
    let mut paths: Vec<String> = [
        "/",
        "/tenants",
        "/tenants/new",
        "/customers",
        "/plans",
        "/servers",
        "/operations",
        "/queues",
        "/audit",
        "/operators",
        "/tokens",
        "/account",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    paths.push(format!("/servers/{}", seed.server));
    paths.push(format!("/plans/{}", seed.plan));
    paths.push(format!("/customers/{}", seed.customer));
    for path in &paths {
        let response = owner.get(path).await?;
        ensure!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        check_headers(path, &response, false)?;
        check_page(path, response).await?;
    }
    // An error page (admin's own, with its back link) as well.
    let missing = owner
        .get(&format!("/tenants/{}", uuid::Uuid::new_v4()))
        .await?;
    ensure!(missing.status() == 404);
    check_headers("/tenants/<missing>", &missing, false)?;
    check_page("/tenants/<missing>", missing).await?;
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
    let app = TestApp::start_with(&[("PUBLIC_SCHEME", "https")]).await?;
    // Secure cookies do not go back over the test's plain http by
    // themselves: carried by hand, as a browser over https would.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let page = client.get(app.url("/login")).send().await?;
    check_headers("/login", &page, true)?;
    let cookie = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    };
    let login_cookie =
        cookie(&page, "__Host-saas_admin_login_csrf").context("no __Host- login cookie")?;
    let csrf = between(&page.text().await?, "name=\"_csrf\" value=\"", "\"").context("csrf")?;
    let signed_in = client
        .post(app.url("/login"))
        .header("cookie", login_cookie.split(';').next().unwrap_or(""))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("email", OWNER_EMAIL),
            ("password", OWNER_PASSWORD),
        ])
        .send()
        .await?;
    ensure!(signed_in.status() == 303, "login: {}", signed_in.status());
    let session = cookie(&signed_in, "__Host-saas_admin_session").context("no __Host- session")?;
    for set in [&login_cookie, &session] {
        ensure!(
            set.contains("Secure") && set.contains("Path=/") && !set.contains("Domain"),
            "{set}"
        );
    }
    let pair = session.split(';').next().unwrap_or("").to_owned();
    let dashboard = client
        .get(app.url("/"))
        .header("cookie", &pair)
        .send()
        .await?;
    ensure!(
        dashboard.status() == 200,
        "dashboard: {}",
        dashboard.status()
    );
    check_headers("/", &dashboard, true)?;
    let planted = client
        .get(app.url("/"))
        .header("cookie", pair.replace("__Host-", ""))
        .send()
        .await?;
    ensure!(planted.status() == 303, "an unprefixed cookie was accepted");
    Ok(())
}
