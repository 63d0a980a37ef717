//! Every URL the portal generates is right behind a non-default port
//! (`PUBLIC_PORT`, nginx published on 8081 as in `.env.example`), and a
//! default port is left out.

mod common;

use anyhow::{Context as _, ensure};
use common::{Options, TestApp, csrf_in, set_state};
use reqwest::Method;
use serde_json::Value;

async fn app_on(port: &str) -> anyhow::Result<TestApp> {
    TestApp::start_with(Options {
        extra_env: vec![("PUBLIC_PORT".to_owned(), port.to_owned())],
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn the_open_link_and_mail_links_carry_the_public_port() -> anyhow::Result<()> {
    for (port, tenant_url, portal_url) in [
        (
            "8081",
            "http://shop.saas.test:8081",
            "http://portal.saas.test:8081",
        ),
        ("80", "http://shop.saas.test", "http://portal.saas.test"),
    ] {
        let app = app_on(port).await?;
        let customer = app.customer(&format!("p{port}@example.com")).await?;
        let (id, _) = customer.create_instance("shop").await?;
        set_state(&app, id, "active").await?;
        let page = customer
            .client
            .get(customer.url(&format!("/instances/{id}")))
            .send()
            .await?
            .text()
            .await?;
        ensure!(
            page.contains(&format!("href=\"{tenant_url}\"")),
            "PUBLIC_PORT={port}: the open link is not {tenant_url}"
        );
        let api: Value = customer
            .api(Method::GET, &format!("/api/v1/instances/{id}"), None)
            .await?
            .json()
            .await?;
        ensure!(api["instance"]["url"] == tenant_url, "{api}");

        // Through nginx the portal sees its bare name as Host: the mail's
        // link still carries the port browsers use.
        let anonymous = TestApp::client()?;
        let form = anonymous
            .get(app.url("/password/forgot"))
            .header("host", "portal.saas.test")
            .send()
            .await?
            .text()
            .await?;
        let csrf = csrf_in(&form)?;
        let sent = anonymous
            .post(app.url("/password/forgot"))
            .header("host", "portal.saas.test")
            .form(&[
                ("csrf_token", csrf.as_str()),
                ("email", customer.email.as_str()),
            ])
            .send()
            .await?;
        ensure!(sent.status() == 200, "forgot: {}", sent.status());
        let emails = saas_core::outbox::list(&app.pool, Some(&customer.email), 1, 0).await?;
        let body = &emails.first().context("no mail")?.body_text;
        ensure!(
            body.contains(&format!("{portal_url}/password/reset?token=")),
            "PUBLIC_PORT={port}: {body}"
        );
    }
    Ok(())
}
