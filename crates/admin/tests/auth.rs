//! Signing in: throttling, session cookie flags and expiry, logout, the
//! create-operator command, and the second factor.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, ensure};
use common::{OWNER_EMAIL, OWNER_PASSWORD, TestApp, between};
use redis::AsyncCommands;

#[tokio::test]
async fn login_is_throttled_per_account_with_retry_after() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let browser = app.browser();
    for attempt in 1..=5 {
        let response = browser.login(OWNER_EMAIL, "wrong-password-123").await?;
        ensure!(
            response.status() == 401,
            "attempt {attempt}: {}",
            response.status()
        );
    }
    let response = browser.login(OWNER_EMAIL, OWNER_PASSWORD).await?;
    ensure!(
        response.status() == 429,
        "6th attempt: {}",
        response.status()
    );
    let retry: u64 = response
        .headers()
        .get("retry-after")
        .context("no Retry-After")?
        .to_str()?
        .parse()?;
    ensure!((1..=900).contains(&retry), "Retry-After {retry}");
    // Another account from the same address is not locked by this one.
    let other = app
        .browser()
        .login("nobody@example.com", "wrong-password-123")
        .await?;
    ensure!(other.status() == 401, "other account: {}", other.status());
    Ok(())
}

#[tokio::test]
async fn login_is_throttled_per_address() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let browser = app.browser();
    let mut throttled = false;
    for attempt in 0..40 {
        let response = browser
            .login(&format!("user{attempt}@example.com"), "wrong-password-123")
            .await?;
        if response.status() == 429 {
            ensure!(response.headers().contains_key("retry-after"));
            throttled = true;
            break;
        }
        ensure!(
            response.status() == 401,
            "attempt {attempt}: {}",
            response.status()
        );
    }
    ensure!(
        throttled,
        "many accounts from one address were never throttled"
    );
    Ok(())
}

#[tokio::test]
async fn session_cookie_is_httponly_lax_and_ends_on_logout() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let browser = app.browser();
    let response = browser.login(OWNER_EMAIL, OWNER_PASSWORD).await?;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("saas_admin_session="))
        .context("no session cookie")?
        .to_owned();
    ensure!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    ensure!(!cookie.contains("Secure"), "Secure over http: {cookie}");
    ensure!(browser.get("/").await?.status() == 200);
    let csrf = browser.csrf("/").await?;
    let response = browser
        .post_form("/logout", &[("_csrf", csrf.as_str())])
        .await?;
    ensure!(response.status() == 303);
    ensure!(
        browser.get("/").await?.status() == 303,
        "still signed in after logout"
    );
    ensure!(
        app.audit_count(
            "operator.logout",
            &format!("operator:{}", owner_id(&app).await?)
        )
        .await?
            == 1
    );

    let https = TestApp::start_with(&[("PUBLIC_SCHEME", "https")]).await?;
    let response = https.browser().login(OWNER_EMAIL, OWNER_PASSWORD).await?;
    let secure = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.starts_with("__Host-saas_admin_session=") && v.contains("Secure"));
    ensure!(secure, "no Secure __Host- cookie with PUBLIC_SCHEME=https");
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

/// Timeouts of the session-expiry test, set through the environment.
const IDLE_SECS: u64 = 2;
const ABSOLUTE_SECS: u64 = 8;

#[tokio::test]
async fn sessions_expire_when_idle_and_at_their_absolute_limit() -> anyhow::Result<()> {
    let app = TestApp::start_with(&[
        ("ADMIN_SESSION_IDLE_SECS", &IDLE_SECS.to_string()),
        ("ADMIN_SESSION_ABSOLUTE_SECS", &ABSOLUTE_SECS.to_string()),
    ])
    .await?;
    tokio::try_join!(
        idle_session_expires(&app),
        used_session_ends_at_its_limit(&app)
    )?;
    Ok(())
}

/// The session's Redis key lives for the idle timeout, renewed by each
/// request; a session left alone longer than that is refused.
async fn idle_session_expires(app: &TestApp) -> anyhow::Result<()> {
    let mut redis = app.redis().await?;
    let browser = app.owner().await?;
    let token = browser.session_token().context("no session cookie")?;
    let key = format!(
        "{}admin:session:{}",
        app.prefix,
        saas_core::auth::sha256_hex(&token)
    );
    let ttl: i64 = redis.ttl(&key).await?;
    ensure!((1..=IDLE_SECS as i64).contains(&ttl), "ttl {ttl}");
    // Used more often than the idle timeout, the session outlives it.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let status = browser.get("/").await?.status();
        ensure!(status == 200, "session in use refused: {status}");
    }
    // Still well within the absolute limit, but idle for longer than allowed.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let status = browser.get("/").await?.status();
    ensure!(status == 303, "idle session still valid: {status}");
    Ok(())
}

/// A session used every second is refused once it is older than the
/// absolute limit.
async fn used_session_ends_at_its_limit(app: &TestApp) -> anyhow::Result<()> {
    let browser = app.owner().await?;
    let signed_in = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let age = signed_in.elapsed().as_secs_f64();
        let status = browser.get("/").await?.status();
        // Sessions count whole seconds: allow one either side of the limit.
        if age < (ABSOLUTE_SECS - 2) as f64 {
            ensure!(status == 200, "session refused after {age:.1} s: {status}");
        }
        if age >= (ABSOLUTE_SECS + 1) as f64 + 0.5 {
            ensure!(
                status == 303,
                "session past its absolute limit ({age:.1} s): {status}"
            );
            return Ok(());
        }
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn create_operator(app: &TestApp, args: &[&str], password: &str) -> anyhow::Result<(i32, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_admin"))
        .arg("create-operator")
        .args(args)
        .env_clear()
        .envs(&app.env)
        .env("SAAS_NO_DOTENV", "1")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("no stdin")?
        .write_all(format!("{password}\n").as_bytes())?;
    let output = child.wait_with_output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.code().unwrap_or(-1), text))
}

#[tokio::test]
async fn create_operator_command_reads_the_password_from_stdin() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let (code, out) = create_operator(
        &app,
        &["--email", "ops@example.com", "--role", "operator"],
        "sea-lantern-velvet-7",
    )?;
    ensure!(code == 0, "exit {code}: {out}");
    app.login("ops@example.com", "sea-lantern-velvet-7").await?;
    let (code, out) = create_operator(
        &app,
        &["--email", "x@example.com", "--role", "king"],
        "sea-lantern-velvet-7",
    )?;
    ensure!(
        code == 2 && out.contains("role"),
        "bad role: exit {code}: {out}"
    );
    let (code, out) = create_operator(
        &app,
        &["--email", "y@example.com", "--role", "viewer"],
        "short",
    )?;
    ensure!(
        code == 2 && out.contains("password"),
        "weak password: exit {code}: {out}"
    );
    let (code, out) = create_operator(
        &app,
        &["--email", "ops@example.com", "--role", "viewer"],
        "sea-lantern-velvet-7",
    )?;
    ensure!(
        code == 2 && out.contains("email"),
        "taken email: exit {code}: {out}"
    );
    // The bootstrap owner exists exactly once, even after a restart.
    let owners: i64 = sqlx::query_scalar("SELECT count(*) FROM operators WHERE role = 'owner'")
        .fetch_one(&app.pool)
        .await?;
    ensure!(owners == 1, "{owners} owners");
    Ok(())
}

#[tokio::test]
async fn second_factor_is_asked_after_the_password_once_enabled() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let csrf = owner.csrf("/account").await?;
    let page = owner
        .post_form("/account/totp/start", &[("_csrf", csrf.as_str())])
        .await?
        .text()
        .await?;
    let secret = between(&page, "id=\"totp-secret\">", "<").context("no secret shown")?;
    let bytes = admin::auth::totp::base32_decode(&secret).context("bad secret")?;
    let code = admin::auth::totp::code_at(&bytes, chrono_now()).context("no code")?;
    let page = owner
        .post_form(
            "/account/totp/confirm",
            &[("_csrf", csrf.as_str()), ("code", code.as_str())],
        )
        .await?
        .text()
        .await?;
    let codes = between(&page, "id=\"recovery-codes\">", "</p>").context("no recovery codes")?;
    let recovery = codes
        .split("<br>")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();

    // Password alone now leads to the second step, not in.
    let browser = app.browser();
    let response = browser.login(OWNER_EMAIL, OWNER_PASSWORD).await?;
    ensure!(
        response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            == Some("/login/mfa")
    );
    ensure!(
        browser.get("/").await?.status() == 303,
        "in without the second factor"
    );
    let mfa_csrf = browser.csrf("/login/mfa").await?;
    let wrong = browser
        .post_form(
            "/login/mfa",
            &[("_csrf", mfa_csrf.as_str()), ("code", "000000")],
        )
        .await?;
    ensure!(wrong.status() == 401, "wrong code: {}", wrong.status());
    let right = browser
        .post_form(
            "/login/mfa",
            &[("_csrf", mfa_csrf.as_str()), ("code", recovery.as_str())],
        )
        .await?;
    ensure!(right.status() == 303, "recovery code: {}", right.status());
    ensure!(browser.get("/").await?.status() == 200);
    // A recovery code works once.
    let again = app.browser();
    again.login(OWNER_EMAIL, OWNER_PASSWORD).await?;
    let mfa_csrf = again.csrf("/login/mfa").await?;
    let reused = again
        .post_form(
            "/login/mfa",
            &[("_csrf", mfa_csrf.as_str()), ("code", recovery.as_str())],
        )
        .await?;
    ensure!(
        reused.status() == 401,
        "reused recovery code: {}",
        reused.status()
    );
    Ok(())
}
