//! The portal in headless Chromium with the real worker against the Odoo 18
//! fixture template: sign up, confirm the address from the outbox, create
//! an instance and watch it become active, back it up, download the zip,
//! delete the instance. Screenshots go to `target/screenshots/`.

mod common;

use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};
use base64::Engine as _;
use common::platform::{options, start_worker};
use common::{PASSWORD, TestApp};
use saas_testkit::odoo::OdooWorld;
use saas_testkit::webdriver::{Browser, tools};
use serde_json::json;
use sqlx::Connection as _;

#[tokio::test]
async fn customer_journey_in_headless_chromium() -> anyhow::Result<()> {
    let Some((chromium, chromedriver)) = tools()? else {
        return Ok(());
    };
    let stale =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots/portal-failure.png");
    let _ = std::fs::remove_file(stale);
    let world = OdooWorld::new().await?;
    let app = TestApp::start_with(options(&world)).await?;
    let worker = start_worker(&app, &world).await?;
    let browser = Browser::start(&chromium, &chromedriver, "portal").await?;
    let outcome = journey(&app, &world, &browser).await;
    if outcome.is_err() {
        let _ = browser.screenshot("failure").await;
        eprintln!("worker log:\n{}", worker.log());
    }
    browser.quit().await;
    outcome
}

async fn journey(app: &TestApp, world: &OdooWorld, browser: &Browser) -> anyhow::Result<()> {
    let email = format!("owner-{}@example.com", world.suffix);
    let subdomain = format!("shop-{}", world.suffix);
    let long = Duration::from_secs(90);

    browser.goto(&app.url("/signup")).await?;
    browser.fill("#email", &email).await?;
    browser.fill("#company_name", "Browser Test Ltd").await?;
    browser.fill("#password", PASSWORD).await?;
    browser.screenshot("1-signup").await?;
    browser.click("#signup").await?;
    browser.wait_text("h1", "Check your email", long).await?;

    let link = app.link_in_outbox(&email, "/verify?token=").await?;
    browser.goto(&link).await?;
    browser
        .wait_text("h1", "Email address confirmed", long)
        .await?;
    browser.screenshot("2-verified").await?;

    browser.goto(&app.url("/login")).await?;
    browser.fill("#email", &email).await?;
    browser.fill("#password", PASSWORD).await?;
    browser.click("#login").await?;
    browser.wait_text("h1", "Your instances", long).await?;

    browser.click("#new-instance").await?;
    browser.wait_text("h1", "New instance", long).await?;
    browser.fill("#subdomain", &subdomain).await?;
    browser
        .wait_text("#subdomain-status", "is available", long)
        .await?;
    browser.fill("#admin_password", PASSWORD).await?;
    browser.screenshot("3-create").await?;
    browser.click("#create").await?;
    browser.wait_text("h1", &subdomain, long).await?;
    browser.screenshot("4-provisioning").await?;
    browser.wait_text("#state", "active", long).await?;
    let open = browser.text("#open").await?;
    ensure!(
        open.contains(&format!("http://{subdomain}.saas.test")),
        "open link: {open}"
    );
    browser.screenshot("5-active").await?;

    // The Odoo login is next to the open link; a lost admin password is
    // set again from the page.
    let login = browser.text("#odoo-login").await?;
    ensure!(login.contains(&email), "odoo login: {login}");
    let new_password = "violet-harbour-lantern-7";
    browser
        .fill("#reset-password input[name=admin_password]", new_password)
        .await?;
    browser
        .fill(
            "#reset-password input[name=admin_password_repeat]",
            new_password,
        )
        .await?;
    browser.click("#reset-password-submit").await?;
    browser
        .wait_text("#notice", "New Odoo admin password requested", long)
        .await?;
    browser.screenshot("5b-password").await?;
    let mut reset = String::new();
    for _ in 0..600 {
        reset = sqlx::query_scalar(
            "SELECT o.state FROM operations o JOIN tenants t ON t.id = o.tenant_id
             WHERE t.subdomain = $1 AND o.kind = 'reset_admin_password'",
        )
        .bind(&subdomain)
        .fetch_one(&app.pool)
        .await?;
        if reset == "succeeded" || reset == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(reset == "succeeded", "the reset {reset}");
    let hash: String = sqlx::query_scalar("SELECT password FROM res_users WHERE id = 2")
        .fetch_one(
            &mut sqlx::PgConnection::connect(&saas_testkit::database_url(&subdomain)?).await?,
        )
        .await?;
    ensure!(
        saas_core::auth::odoo_password::verify_password(new_password, &hash),
        "the new password does not verify"
    );

    browser.click("#backup-now").await?;
    browser.wait_text("#backups", "manual", long).await?;
    browser.screenshot("6-backup").await?;
    let download = browser
        .run_async(
            "const done = arguments[arguments.length - 1];
             const link = document.querySelector('a.download');
             fetch(link.href, { credentials: 'same-origin' })
               .then(r => r.arrayBuffer().then(buf => {
                 const bytes = new Uint8Array(buf); let s = '';
                 for (let i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
                 done({ status: r.status, disposition: r.headers.get('content-disposition'), body: btoa(s) });
               }))
               .catch(e => done({ error: String(e) }));",
            json!([]),
        )
        .await?;
    ensure!(download["status"] == 200, "download: {download}");
    ensure!(
        download["disposition"]
            .as_str()
            .is_some_and(|d| d.starts_with("attachment"))
    );
    let zip = base64::engine::general_purpose::STANDARD
        .decode(download["body"].as_str().context("no body")?)?;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))?;
    let names: Vec<String> = archive
        .file_names()
        .map(|n| n.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()?;
    ensure!(
        names.iter().any(|n| n == "dump.sql") && names.iter().any(|n| n == "manifest.json"),
        "{names:?}"
    );
    let mut manifest = String::new();
    archive
        .by_name("manifest.json")?
        .read_to_string(&mut manifest)?;
    ensure!(serde_json::from_str::<serde_json::Value>(&manifest)?.is_object());

    browser.fill("#delete-confirm", &subdomain).await?;
    browser.click("#delete").await?;
    browser.wait_text("#state", "deleted", long).await?;
    browser.screenshot("7-deleted").await?;
    let all_kinds: Vec<String> = sqlx::query_scalar(
        "SELECT b.kind FROM backups b JOIN tenants t ON t.id = b.tenant_id WHERE t.subdomain = $1 ORDER BY b.created_at",
    )
    .bind(&subdomain)
    .fetch_all(&app.pool)
    .await?;
    // The daily schedule may have taken one meanwhile (its hour has passed
    // and the journey outlasts a maintenance pass); the customer's are these.
    let kinds: Vec<&String> = all_kinds.iter().filter(|k| *k != "scheduled").collect();
    ensure!(kinds == ["manual", "pre_delete"], "backups: {kinds:?}");
    Ok(())
}
