//! A customer's first page of a new instance, with the real portal and
//! worker and the Odoo 18 fixture serving pages and asset bundles the way
//! Odoo 18 does (from the tenant's `ir_attachment` rows and its filestore
//! copy; `saas_testkit::odoo::web_client`): the login page, sign-in with the
//! password chosen at creation, and the web client load every bundle the
//! template came with, none compiled; and the same client notices a bundle
//! provisioning failed to copy, a wrong password and a missing session.

mod common;

use std::time::Duration;

use anyhow::{Context as _, ensure};
use common::platform::{options, start_worker};
use common::{PASSWORD, TestApp};
use reqwest::Method;
use saas_testkit::odoo::OdooWorld;
use saas_testkit::real_odoo::TenantBrowser;
use serde_json::Value;
use sqlx::Connection as _;

#[tokio::test]
async fn a_new_instance_serves_its_first_page_with_the_templates_bundles() -> anyhow::Result<()> {
    let world = OdooWorld::new().await?;
    let app = TestApp::start_with(options(&world)).await?;
    let worker = start_worker(&app, &world).await?;
    let customer = app
        .customer(&format!("fp-{}@example.com", world.suffix))
        .await?;
    let subdomain = format!("fp-{}", world.suffix);
    let (id, _) = customer.create_instance(&subdomain).await?;
    let mut active = false;
    for _ in 0..600 {
        let body: Value = customer
            .api(Method::GET, &format!("/api/v1/instances/{id}"), None)
            .await?
            .json()
            .await?;
        match body["instance"]["state"].as_str() {
            Some("active") => {
                active = true;
                break;
            }
            Some("failed") => anyhow::bail!("provisioning failed: {body}\n{}", worker.log()),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    ensure!(active, "never active\n{}", worker.log());

    let odoo = url::Url::parse(&world.odoo_url)?;
    let host = format!("{subdomain}.saas.test");
    let mut browser = TenantBrowser::new(&odoo, &host)?;
    // Not signed in: the web client sends to the login page, as Odoo does.
    let (unsigned, _) = browser.get("/odoo").await?;
    ensure!(unsigned.status == 303, "/odoo unsigned: {unsigned:?}");
    // A wrong password is refused.
    ensure!(
        browser
            .clone()
            .sign_in(&subdomain, &customer.email, "not-the-password-1")
            .await
            .is_err(),
        "a wrong password signed in"
    );

    let first = browser
        .first_visit(&subdomain, &customer.email, PASSWORD)
        .await?;
    first.ensure_complete()?;
    let expected = saas_testkit::odoo::web_client::bundles(saas_testkit::odoo::TEST_BUNDLE_DIVISOR);
    ensure!(
        first.login_page.bundles.len() == 3 && first.web_client.bundles.len() == 3,
        "{first:?}"
    );
    ensure!(
        first.login_page.bundle_bytes() + first.web_client.bundle_bytes()
            == expected.iter().map(|b| b.content.len()).sum::<usize>(),
        "bundles of the wrong size: {first:?}"
    );
    ensure!(
        world.compiled_bundles() == 0,
        "{} bundles compiled on the first visit",
        world.compiled_bundles()
    );

    // A bundle whose file is missing from the tenant's filestore reads as
    // nothing, and the page load says which.
    let mut tenant = sqlx::PgConnection::connect(&saas_testkit::database_url(&subdomain)?).await?;
    let store_fname: String = sqlx::query_scalar(
        "SELECT store_fname FROM ir_attachment WHERE name = 'web.assets_web.min.js'",
    )
    .fetch_one(&mut tenant)
    .await?;
    let file = world.filestore_root.join(&subdomain).join(&store_fname);
    std::fs::remove_file(&file).with_context(|| format!("{}", file.display()))?;
    let broken = browser.load("/odoo", 6).await?;
    let error = broken
        .ensure_complete()
        .err()
        .context("a bundle with no file passed")?;
    ensure!(
        format!("{error}").contains("web.assets_web.min.js"),
        "{error}"
    );

    // A tenant without the bundles' attachments makes Odoo compile them.
    sqlx::query("DELETE FROM ir_attachment WHERE url LIKE '/web/assets/%'")
        .execute(&mut tenant)
        .await?;
    browser.load("/web/login", 6).await?.ensure_complete()?;
    ensure!(
        world.compiled_bundles() == 3,
        "{}",
        world.compiled_bundles()
    );
    Ok(())
}
