//! Customers' own domains on the instance page and in the API, against the
//! real binary (no worker: domains stay `pending_dns` unless a test moves
//! them in SQL).

mod common;

use anyhow::{Context, ensure};
use common::{Customer, Options, TestApp, set_state};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// An active instance of `customer` named `subdomain`.
async fn active_instance(
    app: &TestApp,
    customer: &Customer,
    subdomain: &str,
) -> anyhow::Result<Uuid> {
    let (id, _) = customer.create_instance(subdomain).await?;
    set_state(app, id, "active").await?;
    Ok(id)
}

async fn count(app: &TestApp, sql: &str, tenant: Uuid) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(sql)
        .bind(tenant)
        .fetch_one(&app.pool)
        .await?)
}

async fn domain_id(app: &TestApp, domain: &str) -> anyhow::Result<Uuid> {
    sqlx::query_scalar("SELECT id FROM tenant_domains WHERE domain = $1")
        .bind(domain)
        .fetch_optional(&app.pool)
        .await?
        .with_context(|| format!("no row for {domain}"))
}

async fn page(customer: &Customer, instance: Uuid) -> anyhow::Result<String> {
    let response = customer
        .client
        .get(customer.url(&format!("/instances/{instance}")))
        .send()
        .await?;
    ensure!(
        response.status() == 200,
        "instance page: {}",
        response.status()
    );
    Ok(response.text().await?)
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn a_customer_adds_lists_makes_primary_and_removes_domains() -> anyhow::Result<()> {
    let app = TestApp::start_with(Options {
        extra_env: vec![(
            "PUBLIC_IPS".to_owned(),
            "203.0.113.7, 2001:db8::1".to_owned(),
        )],
        ..Options::default()
    })
    .await?;
    let alice = app.customer("alice@example.com").await?;
    let instance = active_instance(&app, &alice, "alice-shop").await?;
    let domains = format!("/instances/{instance}/domains");

    // The web form: typed with capitals and a trailing dot, stored normalised.
    let added = alice
        .post_form(&domains, &[("domain", " ERP.Acme.com. ")])
        .await?;
    ensure!(added.status() == 303, "add: {}", added.status());
    ensure!(
        location(&added).ends_with("?done=domain"),
        "{}",
        location(&added)
    );
    let erp = domain_id(&app, "erp.acme.com").await?;
    let token: String = sqlx::query_scalar("SELECT token FROM tenant_domains WHERE id = $1")
        .bind(erp)
        .fetch_one(&app.pool)
        .await?;
    let html = page(&alice, instance).await?;
    for expected in [
        "data-domain=\"erp.acme.com\"",
        "<code>_odoo-saas.erp.acme.com</code>",
        &format!("<code>{token}</code>"),
        "<code>alice-shop.saas.test</code>",
        "<code>203.0.113.7</code>",
        "<code>2001:db8::1</code>",
        "waiting for DNS",
    ] {
        ensure!(html.contains(expected), "the page lacks {expected}");
    }
    let notice = alice
        .client
        .get(alice.url(&location(&added)))
        .send()
        .await?;
    ensure!(notice.text().await?.contains("Domain added"));
    // The same name again (a reload, a second click) adds nothing.
    let again = alice
        .post_form(&domains, &[("domain", "erp.acme.com")])
        .await?;
    ensure!(again.status() == 303, "repeat: {}", again.status());

    // The API: a Unicode name, IDNA-encoded; repeated, the same row.
    let api_path = format!("/api/v1/instances/{instance}/domains");
    let response = alice
        .api(
            Method::POST,
            &api_path,
            Some(json!({ "domain": "Bücher.example" })),
        )
        .await?;
    ensure!(response.status() == 202, "api add: {}", response.status());
    let body: Value = response.json().await?;
    let books = &body["domain"];
    ensure!(body["created"] == true, "{body}");
    ensure!(books["domain"] == "xn--bcher-kva.example", "{body}");
    ensure!(books["display_name"] == "bücher.example", "{body}");
    ensure!(
        books["state"] == "pending_dns" && books["primary"] == false,
        "{body}"
    );
    ensure!(
        books["dns"]["txt"]["name"] == "_odoo-saas.xn--bcher-kva.example",
        "{body}"
    );
    ensure!(
        books["dns"]["cname"]["value"] == "alice-shop.saas.test",
        "{body}"
    );
    ensure!(books["dns"]["addresses"][1]["type"] == "AAAA", "{body}");
    let repeated: Value = alice
        .api(
            Method::POST,
            &api_path,
            Some(json!({ "domain": "xn--bcher-kva.example." })),
        )
        .await?
        .json()
        .await?;
    ensure!(
        repeated["created"] == false && repeated["domain"]["id"] == books["id"],
        "{repeated}"
    );
    ensure!(
        count(
            &app,
            "SELECT count(*) FROM tenant_domains WHERE tenant_id = $1",
            instance
        )
        .await?
            == 2
    );
    let listed: Value = alice
        .api(Method::GET, &api_path, None)
        .await?
        .json()
        .await?;
    let names: Vec<&str> = listed["domains"]
        .as_array()
        .context("no domains")?
        .iter()
        .filter_map(|d| d["domain"].as_str())
        .collect();
    ensure!(
        names == ["erp.acme.com", "xn--bcher-kva.example"],
        "{listed}"
    );
    ensure!(listed["max_domains"] == 2, "{listed}");

    // Make the second primary on the page, then watch "Open" follow it once live.
    let books_id = domain_id(&app, "xn--bcher-kva.example").await?;
    let primary = alice
        .post_form(&format!("{domains}/{books_id}/primary"), &[])
        .await?;
    ensure!(primary.status() == 303, "primary: {}", primary.status());
    let primaries: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM tenant_domains WHERE tenant_id = $1 AND is_primary")
            .bind(instance)
            .fetch_all(&app.pool)
            .await?;
    ensure!(primaries == [books_id], "{primaries:?}");
    ensure!(
        page(&alice, instance)
            .await?
            .contains("href=\"http://alice-shop.saas.test")
    );
    sqlx::query("UPDATE tenant_domains SET state = 'live' WHERE id = $1")
        .bind(books_id)
        .execute(&app.pool)
        .await?;
    let html = page(&alice, instance).await?;
    ensure!(
        html.contains(
            "href=\"https://xn--bcher-kva.example\" target=\"_blank\" rel=\"noopener\" id=\"open\""
        ),
        "the Open link does not use the live primary domain"
    );
    let list = alice
        .client
        .get(alice.url("/instances"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(list.contains("href=\"https://xn--bcher-kva.example\""));
    let shown: Value = alice
        .api(Method::GET, &format!("/api/v1/instances/{instance}"), None)
        .await?
        .json()
        .await?;
    ensure!(
        shown["instance"]["url"] == "https://xn--bcher-kva.example",
        "{shown}"
    );
    ensure!(
        shown["instance"]["platform_url"]
            .as_str()
            .is_some_and(|url| url.starts_with("http://alice-shop.saas.test")),
        "{shown}"
    );
    // Primary again through the API: nothing changes, still 202.
    let again = alice
        .api(
            Method::POST,
            &format!("{api_path}/{books_id}/primary"),
            None,
        )
        .await?;
    ensure!(again.status() == 202, "api primary: {}", again.status());

    // Remove: the page twice (the second finds it gone), the API once, then 404.
    let removed = alice
        .post_form(&format!("{domains}/{erp}/remove"), &[])
        .await?;
    ensure!(removed.status() == 303 && location(&removed).ends_with("?done=domain-removed"));
    let twice = alice
        .post_form(&format!("{domains}/{erp}/remove"), &[])
        .await?;
    ensure!(twice.status() == 303, "second remove: {}", twice.status());
    let deleted = alice
        .api(Method::DELETE, &format!("{api_path}/{books_id}"), None)
        .await?;
    ensure!(deleted.status() == 202, "api remove: {}", deleted.status());
    let gone = alice
        .api(Method::DELETE, &format!("{api_path}/{books_id}"), None)
        .await?;
    ensure!(gone.status() == 404, "api remove again: {}", gone.status());
    ensure!(
        count(
            &app,
            "SELECT count(*) FROM tenant_domains WHERE tenant_id = $1",
            instance
        )
        .await?
            == 0
    );

    // Audited once per change, each change asking the worker to sync.
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE action LIKE 'domain.%' AND actor = 'customer:alice@example.com' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await?;
    ensure!(
        actions
            == [
                "domain.add",
                "domain.add",
                "domain.make_primary",
                "domain.remove",
                "domain.remove"
            ],
        "{actions:?}"
    );
    let syncs = count(
        &app,
        "SELECT count(*) FROM operations WHERE tenant_id = $1 AND kind = 'sync_domains'",
        instance,
    )
    .await?;
    ensure!(syncs >= 1, "no sync_domains operation requested");
    Ok(())
}

#[tokio::test]
async fn hostile_domains_are_refused_naming_the_field() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let alice = app.customer("alice@example.com").await?;
    let bob = app.customer("bob@example.com").await?;
    let instance = active_instance(&app, &alice, "alice-shop").await?;
    let bobs = active_instance(&app, &bob, "bob-shop").await?;
    let api_path = format!("/api/v1/instances/{instance}/domains");
    let long = format!("{}.com", "abcdefghi.".repeat(30));
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({ "domain": "" }), 422, "required"),
        (json!({ "domain": "a..b.com" }), 422, "empty label"),
        (json!({ "domain": "a..b" }), 422, "empty label"),
        (json!({ "domain": "*.x.com" }), 422, "wildcards"),
        (json!({ "domain": "localhost" }), 422, ""),
        (json!({ "domain": "shop.localhost" }), 422, "localhost"),
        (json!({ "domain": "127.0.0.1" }), 422, "IP address"),
        (json!({ "domain": "203.0.113.7" }), 422, "IP address"),
        (json!({ "domain": "[2001:db8::1]" }), 422, "IP address"),
        (json!({ "domain": "2001:db8::1" }), 422, "IP address"),
        (
            json!({ "domain": "portal.saas.test" }),
            422,
            "belong to the platform",
        ),
        (
            json!({ "domain": "PORTAL.SAAS.TEST." }),
            422,
            "belong to the platform",
        ),
        (
            json!({ "domain": "saas.test" }),
            422,
            "belong to the platform",
        ),
        (
            json!({ "domain": "bob-shop.saas.test" }),
            422,
            "belong to the platform",
        ),
        (
            json!({ "domain": "https://erp.acme.com/" }),
            422,
            "bare domain",
        ),
        (json!({ "domain": "erp.acme.com:443" }), 422, "bare domain"),
        (json!({ "domain": "a".repeat(300) }), 422, "longer than 253"),
        (json!({ "domain": long }), 422, "longer than 253"),
        (
            json!({ "domain": format!("{}.com", "a".repeat(64)) }),
            422,
            "",
        ),
        (json!({ "domain": "under_score.com" }), 422, ""),
        (json!({ "domain": "bad\u{2028}name.com" }), 422, ""),
        (json!({ "domain": "a\u{0}b.com" }), 422, "control"),
        (json!({ "domain": 5 }), 422, ""),
        (json!({}), 422, ""),
    ];
    for (body, status, reason) in &cases {
        let response = alice
            .api(Method::POST, &api_path, Some(body.clone()))
            .await?;
        ensure!(
            response.status() == *status,
            "{body}: {}",
            response.status()
        );
        let error: Value = response.json().await?;
        ensure!(error["error"]["field"] == "domain", "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap_or("");
        ensure!(message.contains(reason), "{body}: {message}");
    }
    // The web form answers the same, on the instance page, keeping the input.
    let form = alice
        .post_form(
            &format!("/instances/{instance}/domains"),
            &[("domain", "*.x.com")],
        )
        .await?;
    ensure!(form.status() == 422, "form: {}", form.status());
    let html = form.text().await?;
    ensure!(html.contains("data-field=\"domain\"") && html.contains("value=\"*.x.com\""));
    ensure!(
        count(
            &app,
            "SELECT count(*) FROM tenant_domains WHERE tenant_id = $1",
            instance
        )
        .await?
            == 0
    );

    // Another tenant's domain, in any spelling: 409 naming the field.
    let bob_path = format!("/api/v1/instances/{bobs}/domains");
    let taken = bob
        .api(
            Method::POST,
            &bob_path,
            Some(json!({ "domain": "bücher.example" })),
        )
        .await?;
    ensure!(taken.status() == 202);
    for spelling in ["BÜCHER.example", "xn--bcher-kva.example."] {
        let response = alice
            .api(Method::POST, &api_path, Some(json!({ "domain": spelling })))
            .await?;
        ensure!(
            response.status() == 409,
            "{spelling}: {}",
            response.status()
        );
        let error: Value = response.json().await?;
        ensure!(error["error"]["field"] == "domain", "{error}");
        ensure!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("already used"))
        );
    }
    let form = alice
        .post_form(
            &format!("/instances/{instance}/domains"),
            &[("domain", "Bücher.example")],
        )
        .await?;
    ensure!(form.status() == 409 && form.text().await?.contains("already used"));

    // The plan's limit (2 by default): the third is refused with the reason.
    for name in ["one.example.com", "two.example.com"] {
        let response = alice
            .api(Method::POST, &api_path, Some(json!({ "domain": name })))
            .await?;
        ensure!(response.status() == 202, "{name}: {}", response.status());
    }
    let over = alice
        .api(
            Method::POST,
            &api_path,
            Some(json!({ "domain": "three.example.com" })),
        )
        .await?;
    ensure!(over.status() == 409, "over the limit: {}", over.status());
    let error: Value = over.json().await?;
    ensure!(error["error"]["field"] == "domain", "{error}");
    ensure!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("plan allows 2 domains")),
        "{error}"
    );
    // ... while one it already has is still answered as such.
    let existing = alice
        .api(
            Method::POST,
            &api_path,
            Some(json!({ "domain": "one.example.com" })),
        )
        .await?;
    ensure!(existing.status() == 202);
    // A plan allowing fewer domains than the instance has does not fit.
    sqlx::query("UPDATE plans SET max_domains = 1 WHERE code = 'small'")
        .execute(&app.pool)
        .await?;
    let smaller = alice
        .api(
            Method::POST,
            &format!("/api/v1/instances/{instance}/plan"),
            Some(json!({ "plan": "small" })),
        )
        .await?;
    ensure!(smaller.status() == 409, "plan change: {}", smaller.status());
    let error: Value = smaller.json().await?;
    ensure!(
        error["error"]["field"] == "plan"
            && error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("allows 1 domains per instance and this one has 2")),
        "{error}"
    );
    // Nothing above was a server error.
    ensure!(
        !app.process.log().contains("request failed"),
        "a request failed"
    );
    Ok(())
}

#[tokio::test]
async fn only_the_owner_changes_an_instances_domains() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let alice = app.customer("alice@example.com").await?;
    let bob = app.customer("bob@example.com").await?;
    let instance = active_instance(&app, &alice, "alice-shop").await?;
    let bobs = active_instance(&app, &bob, "bob-shop").await?;
    let added: Value = alice
        .api(
            Method::POST,
            &format!("/api/v1/instances/{instance}/domains"),
            Some(json!({ "domain": "erp.acme.com" })),
        )
        .await?
        .json()
        .await?;
    let domain = added["domain"]["id"].as_str().context("no id")?.to_owned();
    let missing = Uuid::new_v4().to_string();
    let instance = instance.to_string();

    // Bob: alice's instance answers exactly like a missing one.
    let web = [
        "/instances/{i}/domains",
        "/instances/{i}/domains/{d}/primary",
        "/instances/{i}/domains/{d}/remove",
    ];
    for template in web {
        let theirs = template.replace("{i}", &instance).replace("{d}", &domain);
        let absent = template.replace("{i}", &missing).replace("{d}", &missing);
        let mut answers = Vec::new();
        for path in [&theirs, &absent] {
            let response = bob
                .post_form(path, &[("domain", "evil.example.com")])
                .await?;
            answers.push((response.status(), response.text().await?));
        }
        ensure!(answers[0].0 == 404, "POST {theirs}: {}", answers[0].0);
        ensure!(
            answers[0] == answers[1],
            "POST {theirs} differs from a missing id"
        );
    }
    let api = [
        (Method::GET, "/api/v1/instances/{i}/domains"),
        (Method::POST, "/api/v1/instances/{i}/domains"),
        (Method::POST, "/api/v1/instances/{i}/domains/{d}/primary"),
        (Method::DELETE, "/api/v1/instances/{i}/domains/{d}"),
    ];
    for (method, template) in &api {
        let theirs = template.replace("{i}", &instance).replace("{d}", &domain);
        let absent = template.replace("{i}", &missing).replace("{d}", &missing);
        let body = json!({ "domain": "evil.example.com" });
        let a = bob.api(method.clone(), &theirs, Some(body.clone())).await?;
        let b = bob.api(method.clone(), &absent, Some(body)).await?;
        let (a, b) = ((a.status(), a.text().await?), (b.status(), b.text().await?));
        ensure!(a.0 == 404, "{method} {theirs}: {} {}", a.0, a.1);
        ensure!(a == b, "{method} {theirs} differs from a missing id");
    }
    // Bob's own instance with alice's domain id: not his domain either.
    for (method, template) in &api[2..] {
        let path = template
            .replace("{i}", &bobs.to_string())
            .replace("{d}", &domain);
        let response = bob.api(method.clone(), &path, None).await?;
        ensure!(
            response.status() == 404,
            "{method} {path}: {}",
            response.status()
        );
    }
    let cross = bob
        .post_form(&format!("/instances/{bobs}/domains/{domain}/primary"), &[])
        .await?;
    ensure!(cross.status() == 404, "cross primary: {}", cross.status());

    // Signed out: the pages send to sign-in, the API answers 401.
    let anonymous = TestApp::client()?;
    let form = anonymous
        .post(app.url(&format!("/instances/{instance}/domains")))
        .form(&[("domain", "evil.example.com")])
        .send()
        .await?;
    ensure!(form.status() == 303 && location(&form).starts_with("/login"));
    for (method, template) in &api {
        let path = template.replace("{i}", &instance).replace("{d}", &domain);
        let response = anonymous
            .request(method.clone(), app.url(&path))
            .send()
            .await?;
        ensure!(
            response.status() == 401,
            "{method} {path}: {}",
            response.status()
        );
    }

    // The owner without the CSRF token: refused, nothing changed.
    let forged = alice
        .client
        .post(alice.url(&format!("/instances/{instance}/domains/{domain}/remove")))
        .form(&[("csrf_token", "forged")])
        .send()
        .await?;
    ensure!(forged.status() == 403, "forged form: {}", forged.status());
    let no_header = alice
        .client
        .delete(alice.url(&format!("/api/v1/instances/{instance}/domains/{domain}")))
        .send()
        .await?;
    ensure!(
        no_header.status() == 403,
        "no X-CSRF-Token: {}",
        no_header.status()
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_domains")
        .fetch_one(&app.pool)
        .await?;
    ensure!(rows == 1, "{rows} domains after refused requests");
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action LIKE 'domain.%'")
            .fetch_one(&app.pool)
            .await?;
    ensure!(audited == 1, "{audited} domain audit entries");
    Ok(())
}

#[tokio::test]
async fn domains_wait_for_an_active_instance() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let alice = app.customer("alice@example.com").await?;
    let (instance, _) = alice.create_instance("alice-shop").await?;
    let response = alice
        .api(
            Method::POST,
            &format!("/api/v1/instances/{instance}/domains"),
            Some(json!({ "domain": "erp.acme.com" })),
        )
        .await?;
    ensure!(
        response.status() == 409,
        "pending instance: {}",
        response.status()
    );
    let error: Value = response.json().await?;
    ensure!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("active or suspended")),
        "{error}"
    );
    let html = page(&alice, instance).await?;
    ensure!(
        !html.contains("id=\"add-domain\""),
        "the form shows before the instance is active"
    );
    set_state(&app, instance, "suspended").await?;
    let form = alice
        .post_form(
            &format!("/instances/{instance}/domains"),
            &[("domain", "erp.acme.com")],
        )
        .await?;
    ensure!(
        form.status() == 303,
        "suspended instance: {}",
        form.status()
    );
    Ok(())
}
