//! Plans' templates are picked from those the worker found on the servers;
//! plans the worker made for ODOO_TEMPLATES are marked and editable; links
//! to tenants carry PUBLIC_PORT.

mod common;

use anyhow::ensure;
use common::TestApp;
use serde_json::{Value, json};
use uuid::Uuid;

fn plan(code: &str, template: &str) -> Value {
    json!({ "code": code, "name": "Plan", "max_users": 3, "max_storage_mb": 512, "template": template })
}

#[tokio::test]
async fn a_plans_template_is_one_found_on_an_active_server() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let token = app.token(&owner).await?;

    // Nothing built yet: refused with what to do.
    let (status, body) = app
        .api(
            &token,
            "POST",
            "/api/v1/plans",
            Some(plan("early", "basic")),
        )
        .await?;
    ensure!(
        status == 422 && body["error"]["field"] == "template",
        "{status} {body}"
    );
    ensure!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no template has been found")),
        "{body}"
    );
    let page = owner.get("/plans").await?.text().await?;
    ensure!(page.contains("id=\"no-templates\""), "no hint on the page");

    app.server_with_template("basic").await?;
    let standard_server = app.server_with_template("standard").await?;
    let page = owner.get("/plans").await?.text().await?;
    ensure!(
        page.contains("<option value=\"basic\">tpl_basic</option>")
            && page.contains("<option value=\"standard\">tpl_standard</option>")
            && !page.contains("name=\"template\" required maxlength"),
        "the template is not picked from the servers' templates"
    );
    for bad in ["nosuch", "../basic", "tpl_basic", "", "BASIC"] {
        let (status, body) = app
            .api(&token, "POST", "/api/v1/plans", Some(plan("bad", bad)))
            .await?;
        ensure!(
            status == 422 && body["error"]["field"] == "template",
            "{bad:?}: {status} {body}"
        );
    }
    let (_, body) = app
        .api(&token, "POST", "/api/v1/plans", Some(plan("bad", "nosuch")))
        .await?;
    ensure!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("basic, standard")),
        "{body}"
    );
    // The form refuses the same way, naming the field.
    let csrf = owner.csrf("/plans").await?;
    let refused = owner
        .post_form(
            "/plans",
            &[
                ("_csrf", csrf.as_str()),
                ("code", "formplan"),
                ("name", "Form"),
                ("max_users", "2"),
                ("max_storage_mb", "100"),
                ("template", "nosuch"),
            ],
        )
        .await?;
    ensure!(refused.status() == 422, "form: {}", refused.status());
    ensure!(
        refused.text().await?.contains("template"),
        "field not named"
    );

    let (status, created) = app
        .api(
            &token,
            "POST",
            "/api/v1/plans",
            Some(plan("fine", "standard")),
        )
        .await?;
    ensure!(status == 201, "{status} {created}");
    let id = created["plan"]["id"]
        .as_str()
        .or(created["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    ensure!(!id.is_empty(), "{created}");

    // A server taken out of service no longer offers its templates...
    sqlx::query("UPDATE servers SET active = false WHERE id = $1")
        .bind(standard_server)
        .execute(&app.pool)
        .await?;
    let (status, _) = app
        .api(
            &token,
            "POST",
            "/api/v1/plans",
            Some(plan("other", "standard")),
        )
        .await?;
    ensure!(status == 422, "an inactive server's template: {status}");
    // ...but a plan keeps the template it has while it is missing, and
    // says so on its page.
    let (status, body) = app
        .api(
            &token,
            "PATCH",
            &format!("/api/v1/plans/{id}"),
            Some(json!({ "name": "Renamed" })),
        )
        .await?;
    ensure!(status == 200, "{status} {body}");
    let page = owner.get(&format!("/plans/{id}")).await?.text().await?;
    ensure!(
        page.contains("tpl_standard (not found on any active server)"),
        "the missing template is not shown as such"
    );
    let (status, _) = app
        .api(
            &token,
            "PATCH",
            &format!("/api/v1/plans/{id}"),
            Some(json!({ "template": "nosuch" })),
        )
        .await?;
    ensure!(status == 422, "changed to a missing template: {status}");
    Ok(())
}

#[tokio::test]
async fn a_plan_made_for_odoo_templates_is_marked_and_editable() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let token = app.token(&owner).await?;
    app.server_with_template("basic").await?;
    let made = saas_core::template_plans::seed(
        &app.pool,
        &[saas_core::config::TemplateSpec {
            name: "basic".into(),
            modules: vec!["base".into(), "web".into()],
        }],
    )
    .await?;
    ensure!(made.len() == 1, "{made:?}");
    let id = made[0].plan_id;
    let list = owner.get("/plans").await?.text().await?;
    ensure!(list.contains(">auto</small>"), "not marked in the list");
    let page = owner.get(&format!("/plans/{id}")).await?.text().await?;
    ensure!(page.contains("id=\"created-automatically\""), "not marked");
    let (status, body) = app
        .api(
            &token,
            "PATCH",
            &format!("/api/v1/plans/{id}"),
            Some(json!({ "name": "Starter", "max_users": 9 })),
        )
        .await?;
    ensure!(status == 200, "{status} {body}");
    let (status, _) = app
        .api(&token, "DELETE", &format!("/api/v1/plans/{id}"), None)
        .await?;
    ensure!(status == 204 || status == 200, "delete: {status}");
    let again = saas_core::template_plans::seed(
        &app.pool,
        &[saas_core::config::TemplateSpec {
            name: "basic".into(),
            modules: vec!["base".into()],
        }],
    )
    .await?;
    ensure!(again.is_empty(), "a deleted seeded plan came back");
    Ok(())
}

#[tokio::test]
async fn links_to_tenants_carry_the_public_port() -> anyhow::Result<()> {
    for (port, url) in [
        ("8081", "http://linked.saas.test:8081/"),
        ("80", "http://linked.saas.test/"),
    ] {
        let app = TestApp::start_with(&[("PUBLIC_PORT", port)]).await?;
        let owner = app.owner().await?;
        let token = app.token(&owner).await?;
        let seed = app.seed("basic").await?;
        let (status, created) = app
            .api(
                &token,
                "POST",
                "/api/v1/tenants",
                Some(json!({
                    "customer": seed.customer_email, "plan": seed.plan_code,
                    "subdomain": "linked", "admin_password": "secret-pass"
                })),
            )
            .await?;
        ensure!(status == 201, "{status} {created}");
        let tenant: Uuid = created["tenant"]["id"]
            .as_str()
            .unwrap_or_default()
            .parse()?;
        let page = owner
            .get(&format!("/tenants/{tenant}"))
            .await?
            .text()
            .await?;
        ensure!(
            page.contains(&format!("href=\"{url}\"")),
            "PUBLIC_PORT={port}: no link to {url}"
        );
        let (_, api) = app
            .api(&token, "GET", &format!("/api/v1/tenants/{tenant}"), None)
            .await?;
        ensure!(api.to_string().contains(url), "{api}");
    }
    Ok(())
}
