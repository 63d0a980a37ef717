//! The Domains page and `/api/v1/domains`: every customer's domain with its
//! state, certificate and renewals; retry and remove, audited, for
//! operators only; and plans' `max_domains`.

mod common;

use anyhow::{Context, ensure};
use common::{Browser, TestApp};
use saas_core::domains::{self, TenantDomain};
use saas_core::ops::Actor;
use serde_json::{Value, json};
use uuid::Uuid;

/// An active tenant of a seeded customer, created by the owner.
async fn active_tenant(app: &TestApp, token: &str, subdomain: &str) -> anyhow::Result<Uuid> {
    let seed = app.seed("basic").await?;
    let (status, created) = app
        .api(
            token,
            "POST",
            "/api/v1/tenants",
            Some(json!({
                "customer": seed.customer_email, "plan": seed.plan_code, "subdomain": subdomain
            })),
        )
        .await?;
    ensure!(status == 201, "{status} {created}");
    let tenant: Uuid = created["tenant"]["id"]
        .as_str()
        .context("no tenant id")?
        .parse()?;
    app.set_state(tenant, "active").await?;
    Ok(tenant)
}

/// A domain the tenant's customer added (as the portal does).
async fn customer_adds(app: &TestApp, tenant: Uuid, name: &str) -> anyhow::Result<TenantDomain> {
    let actor = Actor {
        name: "customer:c@example.com".to_owned(),
        address: None,
    };
    let (row, _) = domains::add(&app.pool, None, tenant, name, "saas.test", &actor).await?;
    Ok(row)
}

async fn state_of(app: &TestApp, id: Uuid) -> anyhow::Result<Option<(String, Option<String>)>> {
    Ok(
        sqlx::query_as("SELECT state, reason FROM tenant_domains WHERE id = $1")
            .bind(id)
            .fetch_optional(&app.pool)
            .await?,
    )
}

async fn form(browser: &Browser, path: &str, reason: &str) -> anyhow::Result<u16> {
    let csrf = browser.csrf("/domains").await?;
    let response = browser
        .post_form(path, &[("_csrf", csrf.as_str()), ("reason", reason)])
        .await?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn operators_see_every_domain_and_retry_or_remove_one() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let token = app.token(&owner).await?;
    let tenant = active_tenant(&app, &token, "acme-shop").await?;
    let failed = customer_adds(&app, tenant, "erp.acme.com").await?;
    let live = customer_adds(&app, tenant, "bücher.example").await?;
    sqlx::query(
        "UPDATE tenant_domains SET state = 'failed', reason = 'TXT record not found at _odoo-saas.erp.acme.com' WHERE id = $1",
    )
    .bind(failed.id)
    .execute(&app.pool)
    .await?;
    sqlx::query(
        "UPDATE tenant_domains SET state = 'live', cert_issuer = 'Pebble Intermediate CA', cert_not_after = '2031-02-03T04:05:06Z',
                renewed_at = '2030-12-01T00:00:00Z', renewal_error = 'HTTP-01 challenge failed: connection refused'
         WHERE id = $1",
    )
    .bind(live.id)
    .execute(&app.pool)
    .await?;

    // The page, beside the other sections, with everything an operator needs.
    let page = owner.get("/domains").await?;
    ensure!(page.status() == 200, "page: {}", page.status());
    let html = page.text().await?;
    for expected in [
        "href=\"/domains\" class=\"current\"",
        "erp.acme.com",
        "bücher.example",
        "acme-shop",
        "TXT record not found at _odoo-saas.erp.acme.com",
        "Pebble Intermediate CA",
        "2031-02-03 04:05 UTC",
        "2030-12-01 00:00 UTC",
        "HTTP-01 challenge failed: connection refused",
        &format!("action=\"/domains/{}/retry\"", failed.id),
        &format!("action=\"/domains/{}/remove\"", live.id),
    ] {
        ensure!(html.contains(expected), "the page lacks {expected}");
    }
    ensure!(
        owner
            .get("/")
            .await?
            .text()
            .await?
            .contains("href=\"/domains\"")
    );

    // Filtered by state, and a page at a time.
    let html = owner.get("/domains?state=failed").await?.text().await?;
    ensure!(
        html.contains("erp.acme.com") && !html.contains("bücher.example"),
        "the failed ones only"
    );
    let html = owner.get("/domains?limit=1").await?.text().await?;
    let next = html
        .split("href=\"")
        .find_map(|rest| rest.strip_prefix("/domains?cursor="))
        .and_then(|rest| rest.split('"').next())
        .context("no next page link")?
        .to_owned();
    ensure!(
        html.contains("bücher.example") && !html.contains("erp.acme.com"),
        "the newest first"
    );
    let html = owner
        .get(&format!("/domains?limit=1&cursor={next}"))
        .await?
        .text()
        .await?;
    ensure!(
        html.contains("erp.acme.com")
            && !html.contains("bücher.example")
            && !html.contains("rel=\"next\""),
        "the second and last page"
    );
    let (status, body) = app
        .api(&token, "GET", "/api/v1/domains?limit=1", None)
        .await?;
    ensure!(
        status == 200 && body["items"].as_array().map(Vec::len) == Some(1),
        "{body}"
    );
    let cursor = body["next_cursor"].as_str().context("no next_cursor")?;
    let (status, body) = app
        .api(
            &token,
            "GET",
            &format!("/api/v1/domains?limit=1&cursor={cursor}"),
            None,
        )
        .await?;
    ensure!(
        status == 200
            && body["items"][0]["domain"] == "erp.acme.com"
            && body["next_cursor"].is_null(),
        "{body}"
    );
    for (query, field) in [
        ("state=gone", "state"),
        ("cursor=zz", "cursor"),
        ("limit=0", "limit"),
    ] {
        let (status, body) = app
            .api(&token, "GET", &format!("/api/v1/domains?{query}"), None)
            .await?;
        ensure!(
            status == 422 && body["error"]["field"] == field,
            "{query}: {status} {body}"
        );
    }

    // The same in JSON.
    let (status, body) = app.api(&token, "GET", "/api/v1/domains", None).await?;
    ensure!(status == 200, "{status} {body}");
    let items = body["items"].as_array().context("no items")?;
    ensure!(items.len() == 2, "{body}");
    let row = items
        .iter()
        .find(|i| i["domain"] == "xn--bcher-kva.example")
        .context("no live domain")?;
    ensure!(
        row["subdomain"] == "acme-shop" && row["tenant_id"] == tenant.to_string(),
        "{row}"
    );
    ensure!(
        row["state"] == "live" && row["cert_issuer"] == "Pebble Intermediate CA",
        "{row}"
    );
    ensure!(
        row["cert_not_after"]
            .as_str()
            .is_some_and(|t| t.starts_with("2031-02-03")),
        "{row}"
    );
    ensure!(
        row["renewed_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("2030-12-01")),
        "{row}"
    );
    ensure!(
        row["renewal_error"] == "HTTP-01 challenge failed: connection refused",
        "{row}"
    );

    // Retry on the page: a failed domain starts over, audited with the reason.
    let operator = app.operator(&token, "operator").await?;
    let status = form(
        &operator,
        &format!("/domains/{}/retry", failed.id),
        "customer fixed DNS",
    )
    .await?;
    ensure!(status == 303, "retry form: {status}");
    ensure!(state_of(&app, failed.id).await? == Some(("pending_dns".to_owned(), None)));
    let (actor, details): (String, Value) = sqlx::query_as(
        "SELECT actor, details FROM audit_log WHERE action = 'domain.retry' AND target = $1",
    )
    .bind(format!("domain:{}", failed.id))
    .fetch_one(&app.pool)
    .await?;
    ensure!(actor.starts_with("operator:operator-"), "{actor}");
    ensure!(details["reason"] == "customer fixed DNS", "{details}");
    // Retry in the API: a live domain is renewed now.
    let (status, body) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/domains/{}/retry", live.id),
            Some(json!({ "reason": "renew now" })),
        )
        .await?;
    ensure!(
        status == 200 && body["domain"]["state"] == "live",
        "{status} {body}"
    );
    let requested: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT renew_requested_at FROM tenant_domains WHERE id = $1")
            .bind(live.id)
            .fetch_one(&app.pool)
            .await?;
    ensure!(requested.is_some(), "no renewal requested");
    let syncs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM operations WHERE tenant_id = $1 AND kind = 'sync_domains'",
    )
    .bind(tenant)
    .fetch_one(&app.pool)
    .await?;
    ensure!(syncs >= 1, "no sync_domains operation");

    // Remove: the API, then the page; a second removal finds nothing.
    let (status, body) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/domains/{}/remove", live.id),
            Some(json!({ "reason": "abuse report" })),
        )
        .await?;
    ensure!(
        status == 200 && body["domain"]["domain"] == "xn--bcher-kva.example",
        "{status} {body}"
    );
    let (status, _) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/domains/{}/remove", live.id),
            Some(json!({ "reason": "again" })),
        )
        .await?;
    ensure!(status == 404, "second removal: {status}");
    let status = form(&operator, &format!("/domains/{}/remove", failed.id), "").await?;
    ensure!(status == 303, "remove form: {status}");
    ensure!(state_of(&app, failed.id).await?.is_none() && state_of(&app, live.id).await?.is_none());
    ensure!(
        app.audit_count("domain.remove", &format!("domain:{}", live.id))
            .await?
            == 1
    );
    ensure!(
        app.audit_count("domain.remove", &format!("domain:{}", failed.id))
            .await?
            == 1
    );
    let html = owner.get("/domains").await?.text().await?;
    ensure!(html.contains("No customer has added a domain yet."));
    Ok(())
}

#[tokio::test]
async fn retrying_needs_an_instance_that_can_change() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let token = app.token(&owner).await?;
    let tenant = active_tenant(&app, &token, "acme-shop").await?;
    let domain = customer_adds(&app, tenant, "erp.acme.com").await?;
    app.set_state(tenant, "deleting").await?;
    let (status, body) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/domains/{}/retry", domain.id),
            Some(json!({ "reason": "x" })),
        )
        .await?;
    ensure!(status == 409, "{status} {body}");
    ensure!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("active or suspended")),
        "{body}"
    );
    let (status, body) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/domains/{}/retry", domain.id),
            Some(json!({ "reason": "x\u{0}" })),
        )
        .await?;
    ensure!(
        status == 422 && body["error"]["field"] == "reason",
        "{status} {body}"
    );
    let (status, _) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/domains/{}/retry", Uuid::new_v4()),
            Some(json!({ "reason": "x" })),
        )
        .await?;
    ensure!(status == 404, "unknown domain: {status}");
    Ok(())
}

#[tokio::test]
async fn viewers_read_domains_and_change_none() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let token = app.token(&owner).await?;
    let viewer = app.operator(&token, "viewer").await?;
    let viewer_token = app.token(&viewer).await?;
    let tenant = active_tenant(&app, &token, "acme-shop").await?;
    let domain = customer_adds(&app, tenant, "erp.acme.com").await?;

    let page = viewer.get("/domains").await?;
    ensure!(page.status() == 200);
    let html = page.text().await?;
    ensure!(
        html.contains("erp.acme.com") && !html.contains("/retry\""),
        "a viewer sees the buttons"
    );
    let (status, _) = app
        .api(&viewer_token, "GET", "/api/v1/domains", None)
        .await?;
    ensure!(status == 200);
    for action in ["retry", "remove"] {
        let path = format!("/domains/{}/{action}", domain.id);
        ensure!(
            form(&viewer, &path, "x").await? == 403,
            "viewer form {action}"
        );
        let (status, body) = app
            .api(
                &viewer_token,
                "POST",
                &format!("/api/v1{path}"),
                Some(json!({ "reason": "x" })),
            )
            .await?;
        ensure!(status == 403, "viewer API {action}: {status} {body}");
        // The owner's session without the CSRF token: refused too.
        let response = owner.post_form(&path, &[("reason", "x")]).await?;
        ensure!(
            response.status() == 403,
            "no CSRF {action}: {}",
            response.status()
        );
    }
    ensure!(state_of(&app, domain.id).await? == Some(("pending_dns".to_owned(), None)));
    let operator_actions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action LIKE 'domain.%' AND actor LIKE 'operator:%'",
    )
    .fetch_one(&app.pool)
    .await?;
    ensure!(
        operator_actions == 0,
        "{operator_actions} domain changes by operators"
    );
    Ok(())
}

#[tokio::test]
async fn plans_set_how_many_domains_an_instance_may_have() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let token = app.token(&owner).await?;
    app.server_with_template("basic").await?;
    let plan = |code: &str, extra: Value| {
        let mut body = json!({ "code": code, "name": "Plan", "max_users": 3, "max_storage_mb": 512, "template": "basic" });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    };
    // Absent: the default, 2.
    let (status, body) = app
        .api(
            &token,
            "POST",
            "/api/v1/plans",
            Some(plan("plain", json!({}))),
        )
        .await?;
    ensure!(status == 201, "{status} {body}");
    let plain = body["id"].as_str().context("no plan id")?.to_owned();
    let (_, shown) = app
        .api(&token, "GET", &format!("/api/v1/plans/{plain}"), None)
        .await?;
    ensure!(shown["max_domains"] == 2, "{shown}");
    for bad in [json!(-1), json!(101), json!("many"), json!(1.5)] {
        let (status, body) = app
            .api(
                &token,
                "POST",
                "/api/v1/plans",
                Some(plan("bad", json!({ "max_domains": bad }))),
            )
            .await?;
        ensure!(
            status == 422 && body["error"]["field"] == "max_domains",
            "{bad}: {status} {body}"
        );
    }
    let (status, body) = app
        .api(
            &token,
            "PATCH",
            &format!("/api/v1/plans/{plain}"),
            Some(json!({ "max_domains": 0 })),
        )
        .await?;
    ensure!(status == 200, "{status} {body}");
    let (_, shown) = app
        .api(&token, "GET", &format!("/api/v1/plans/{plain}"), None)
        .await?;
    ensure!(shown["max_domains"] == 0, "{shown}");

    // The plan's form edits it, with the same validation.
    let csrf = owner.csrf(&format!("/plans/{plain}")).await?;
    let page = owner.get(&format!("/plans/{plain}")).await?.text().await?;
    ensure!(
        page.contains("name=\"max_domains\" value=\"0\""),
        "no max_domains field"
    );
    let fields = |value: &'static str| {
        vec![
            ("_csrf", csrf.clone()),
            ("code", "plain".to_owned()),
            ("name", "Plan".to_owned()),
            ("max_users", "3".to_owned()),
            ("max_storage_mb", "512".to_owned()),
            ("max_backups", "7".to_owned()),
            ("max_instances", "1".to_owned()),
            ("max_domains", value.to_owned()),
            ("template", "basic".to_owned()),
            ("trial_days", "0".to_owned()),
            ("grace_days", "14".to_owned()),
            ("backup_hour_utc", "2".to_owned()),
            ("price_cents", "0".to_owned()),
            ("currency", "EUR".to_owned()),
            ("active", "true".to_owned()),
        ]
    };
    for bad in ["200", "-3", "x"] {
        let response = owner
            .client
            .post(owner.url(&format!("/plans/{plain}")))
            .form(&fields(bad))
            .send()
            .await?;
        ensure!(
            response.status() == 422,
            "form {bad}: {}",
            response.status()
        );
        ensure!(
            response.text().await?.contains("max_domains"),
            "form {bad}: field not named"
        );
    }
    let saved = owner
        .client
        .post(owner.url(&format!("/plans/{plain}")))
        .form(&fields("5"))
        .send()
        .await?;
    ensure!(saved.status() == 303, "form: {}", saved.status());
    let stored: i32 = sqlx::query_scalar("SELECT max_domains FROM plans WHERE code = 'plain'")
        .fetch_one(&app.pool)
        .await?;
    ensure!(stored == 5, "stored {stored}");
    let list = owner.get("/plans").await?.text().await?;
    ensure!(
        list.contains("name=\"max_domains\" value=\"2\""),
        "the new-plan form lacks the field"
    );
    Ok(())
}
