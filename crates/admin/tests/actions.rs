//! What operators do: each action creates an operation and an audit row,
//! bad input is a 4xx naming the field, plans in use stay, alerts arrive,
//! listings page and search, and every page renders.

mod common;

use anyhow::ensure;
use common::{ALERT_TOKEN, TestApp};
use serde_json::{Value, json};
use uuid::Uuid;

async fn operations_of(app: &TestApp, tenant: &str, kind: &str) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM operations WHERE tenant_id = $1::uuid AND kind = $2",
    )
    .bind(tenant)
    .bind(kind)
    .fetch_one(&app.pool)
    .await?)
}

#[tokio::test]
async fn each_action_creates_an_operation_and_an_audit_row() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let token = app.token(&owner).await?;
    let seed = app.seed("basic").await?;
    let (status, created) = app
        .api(
            &token,
            "POST",
            "/api/v1/tenants",
            Some(json!({
                "customer": seed.customer_email, "plan": seed.plan_code, "subdomain": "acme-shop"
            })),
        )
        .await?;
    ensure!(status == 201, "{status} {created}");
    ensure!(
        created["admin_password"]
            .as_str()
            .is_some_and(|p| p.len() >= 8),
        "no generated password: {created}"
    );
    ensure!(created["operation"]["kind"] == "provision");
    let generated = created["admin_password"].as_str().unwrap_or_default();
    ensure!(
        !created["operation"].to_string().contains(generated),
        "secret shown: {created}"
    );
    let tenant = created["tenant"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // Sealed with the provision for the worker, never hashed in the request
    // nor stored in clear.
    let op: Uuid = created["operation"]["id"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    ensure!(saas_core::ops::secrets::held(&app.pool, op).await?);
    let sealed = saas_core::ops::secrets::sealed(
        &app.pool,
        op,
        saas_core::sealing::Purpose::OdooAdminPassword,
    )
    .await?
    .unwrap_or_default();
    let key = saas_core::sealing::SealingKey::derive(&secrecy::SecretString::from(
        "test-secret-key-0123456789abcdef-0123".to_owned(),
    ));
    let opened = key.open(
        saas_core::sealing::Purpose::OdooAdminPassword,
        Uuid::parse_str(&tenant)?,
        &sealed,
    )?;
    ensure!(secrecy::ExposeSecret::expose_secret(&opened) == generated);
    let clear: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM operations WHERE args::text LIKE '%' || $1 || '%')
              + (SELECT count(*) FROM audit_log WHERE details::text LIKE '%' || $1 || '%')",
    )
    .bind(generated)
    .fetch_one(&app.pool)
    .await?;
    ensure!(clear == 0, "the password is stored in clear");
    let target = format!("tenant:{tenant}");
    ensure!(app.audit_count("tenant.create", &target).await? == 1);
    ensure!(operations_of(&app, &tenant, "provision").await? == 1);

    app.set_state(Uuid::parse_str(&tenant)?, "active").await?;
    let other_plan = Uuid::new_v4();
    sqlx::query("INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template) VALUES ($1, 'bigger', 'Bigger', 50, 9999, 7, 'basic')")
        .bind(other_plan)
        .execute(&app.pool)
        .await?;
    let backup = Uuid::new_v4();
    sqlx::query("INSERT INTO backups (id, tenant_id, object_key, size_bytes, sha256, kind) VALUES ($1, $2::uuid, 'k', 10, $3, 'manual')")
        .bind(backup)
        .bind(&tenant)
        .bind("a".repeat(64))
        .execute(&app.pool)
        .await?;
    let steps: Vec<(&str, &str, Value, Option<&str>)> = vec![
        (
            "suspend",
            "suspend",
            json!({ "reason": "unpaid" }),
            Some("suspended"),
        ),
        (
            "resume",
            "resume",
            json!({ "reason": "paid" }),
            Some("active"),
        ),
        (
            "backup",
            "backup",
            json!({ "reason": "before upgrade" }),
            None,
        ),
        (
            "restore",
            "restore",
            json!({ "reason": "oops", "backup_id": backup }),
            None,
        ),
        (
            "change-plan",
            "change_plan",
            json!({ "reason": "grows", "plan": other_plan }),
            None,
        ),
        ("delete", "delete", json!({ "reason": "closed" }), None),
    ];
    for (action, kind, body, after) in steps {
        let (status, answer) = app
            .api(
                &token,
                "POST",
                &format!("/api/v1/tenants/{tenant}/{action}"),
                Some(body),
            )
            .await?;
        ensure!(status == 202, "{action}: {status} {answer}");
        ensure!(answer["operation"]["kind"] == kind, "{action}: {answer}");
        ensure!(
            operations_of(&app, &tenant, kind).await? == 1,
            "{action}: no operation"
        );
        ensure!(
            app.audit_count(&format!("tenant.{kind}"), &target).await? == 1,
            "{action}: no audit row"
        );
        if let Some(state) = after {
            app.set_state(Uuid::parse_str(&tenant)?, state).await?;
        } else {
            app.set_state(Uuid::parse_str(&tenant)?, "active").await?;
        }
    }
    // Not allowed in the current state: 409, and nothing written.
    let (status, body) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/tenants/{tenant}/resume"),
            Some(json!({ "reason": "x" })),
        )
        .await?;
    ensure!(status == 409, "resume of an active tenant: {status} {body}");

    // The same through the page's form, with its confirmation.
    let csrf = owner.csrf(&format!("/tenants/{tenant}")).await?;
    let unconfirmed = owner
        .post_form(
            &format!("/tenants/{tenant}/actions/suspend"),
            &[("_csrf", csrf.as_str()), ("reason", "form")],
        )
        .await?;
    ensure!(
        unconfirmed.status() == 422,
        "unconfirmed: {}",
        unconfirmed.status()
    );
    let confirmed = owner
        .post_form(
            &format!("/tenants/{tenant}/actions/suspend"),
            &[
                ("_csrf", csrf.as_str()),
                ("reason", "form"),
                ("confirm", "yes"),
            ],
        )
        .await?;
    ensure!(
        confirmed.status() == 303,
        "confirmed: {}",
        confirmed.status()
    );
    let location = confirmed
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    ensure!(operations_of(&app, &tenant, "suspend").await? == 2);
    ensure!(app.audit_count("tenant.suspend", &target).await? == 2);
    let page = owner.get(&location).await?.text().await?;
    ensure!(
        page.contains("suspend requested"),
        "no notice on the tenant page at {location}"
    );

    // Operations: cancel the queued one, retry a failed one.
    let queued: Uuid = sqlx::query_scalar(
        "SELECT id FROM operations WHERE tenant_id = $1::uuid AND state = 'queued'",
    )
    .bind(&tenant)
    .fetch_one(&app.pool)
    .await?;
    let (status, body) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/operations/{queued}/cancel"),
            Some(json!({ "reason": "not needed" })),
        )
        .await?;
    ensure!(
        status == 200 && body["state"] == "cancelled",
        "{status} {body}"
    );
    ensure!(
        app.audit_count("operation.cancel", &format!("operation:{queued}"))
            .await?
            == 1
    );
    sqlx::query("UPDATE operations SET state = 'failed', last_error = 'boom', finished_at = now() WHERE id = $1")
        .bind(queued)
        .execute(&app.pool)
        .await?;
    let (status, body) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/operations/{queued}/retry"),
            Some(json!({ "reason": "try again" })),
        )
        .await?;
    ensure!(
        status == 200 && body["state"] == "queued",
        "{status} {body}"
    );
    ensure!(
        app.audit_count("operation.retry", &format!("operation:{queued}"))
            .await?
            == 1
    );
    let (status, _) = app
        .api(
            &token,
            "POST",
            &format!("/api/v1/operations/{queued}/retry"),
            Some(json!({ "reason": "again" })),
        )
        .await?;
    ensure!(status == 409, "retry of a queued operation: {status}");

    // Customers: disable and enable, audited.
    for action in ["disable", "enable"] {
        let (status, body) = app
            .api(
                &token,
                "POST",
                &format!("/api/v1/customers/{}/{action}", seed.customer),
                Some(json!({ "reason": "test" })),
            )
            .await?;
        ensure!(status == 200, "{action}: {status} {body}");
        ensure!(
            app.audit_count(
                &format!("customer.{action}"),
                &format!("customer:{}", seed.customer)
            )
            .await?
                == 1
        );
    }
    Ok(())
}

/// Sends `body` to `path` and expects a 4xx naming `field`.
async fn expect_field(
    app: &TestApp,
    token: &str,
    method: &str,
    path: &str,
    body: Value,
    field: &str,
) -> anyhow::Result<()> {
    let (status, answer) = app.api(token, method, path, Some(body.clone())).await?;
    ensure!(
        (400..500).contains(&status),
        "{path} {body}: {status} {answer}"
    );
    ensure!(
        answer["error"]["field"] == field,
        "{path} {body}: expected field {field}, got {answer}"
    );
    Ok(())
}

#[tokio::test]
async fn bad_input_gets_a_4xx_naming_the_field() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let token = app.token(&owner).await?;
    let seed = app.seed("basic").await?;
    let tenant = |subdomain: Value| json!({ "customer": seed.customer_email, "plan": seed.plan_code, "subdomain": subdomain, "admin_password": "secret-pass" });
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/tenants",
        tenant(json!("")),
        "subdomain",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/tenants",
        tenant(json!("Bad_Name")),
        "subdomain",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/tenants",
        tenant(json!("admin")),
        "subdomain",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/tenants",
        tenant(json!("x".repeat(5000))),
        "subdomain",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/tenants",
        tenant(json!(42)),
        "subdomain",
    )
    .await?;
    expect_field(&app, &token, "POST", "/api/v1/tenants", json!({ "customer": seed.customer_email, "plan": "no-such-plan", "subdomain": "fine-name" }), "plan").await?;
    expect_field(&app, &token, "POST", "/api/v1/tenants", json!({ "customer": "ghost@example.com", "plan": seed.plan_code, "subdomain": "fine-name" }), "customer").await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/tenants",
        json!({ "plan": seed.plan_code, "subdomain": "fine-name" }),
        "customer",
    )
    .await?;
    expect_field(&app, &token, "POST", "/api/v1/tenants", json!({ "customer": seed.customer_email, "plan": seed.plan_code, "subdomain": "fine-name", "admin_password": "short" }), "admin_password").await?;
    expect_field(&app, &token, "POST", "/api/v1/tenants", json!({ "customer": seed.customer_email, "plan": seed.plan_code, "subdomain": "fine-name", "color": "red" }), "color").await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/customers",
        json!({ "email": "new@example.com", "company_name": "x".repeat(201) }),
        "company_name",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/customers",
        json!({ "email": "not-an-email", "company_name": "X" }),
        "email",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/customers",
        json!({ "email": "", "company_name": "X" }),
        "email",
    )
    .await?;
    let plan = json!({ "code": "pro", "name": "Pro", "max_users": 5, "max_storage_mb": 100, "template": "basic" });
    let with = |key: &str, value: Value| {
        let mut body = plan.clone();
        body[key] = value;
        body
    };
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/plans",
        with("max_users", json!("ten")),
        "max_users",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/plans",
        with("max_users", json!(0)),
        "max_users",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/plans",
        with("code", json!("Bad Code")),
        "code",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/plans",
        with("name", json!("")),
        "name",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/plans",
        with("name", json!("n".repeat(101))),
        "name",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/plans",
        with("modules", json!("sale")),
        "modules",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/plans",
        with("currency", json!("euro")),
        "currency",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/plans",
        with("max_users", json!(1e40)),
        "max_users",
    )
    .await?;
    expect_field(&app, &token, "POST", "/api/v1/servers", json!({ "name": "s", "public_url": "ftp://x", "internal_url": "http://x", "pg_url": "postgres://x/y", "filestore_root": "/f", "capacity": 1 }), "public_url").await?;
    expect_field(&app, &token, "POST", "/api/v1/servers", json!({ "name": "s", "public_url": "http://x", "internal_url": "http://x", "pg_url": "postgres://x/y", "filestore_root": "/f", "capacity": -1 }), "capacity").await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/operators",
        json!({ "email": "o@example.com", "role": "god", "password": "plum-orbit-cedar-42" }),
        "role",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/tokens",
        json!({ "name": "" }),
        "name",
    )
    .await?;
    let created = app
        .api(
            &token,
            "POST",
            "/api/v1/tenants",
            Some(tenant(json!("taken-name"))),
        )
        .await?;
    ensure!(created.0 == 201, "{created:?}");
    expect_field(
        &app,
        &token,
        "POST",
        "/api/v1/tenants",
        tenant(json!("taken-name")),
        "subdomain",
    )
    .await?;
    let id = created.1["tenant"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    app.set_state(Uuid::parse_str(&id)?, "active").await?;
    expect_field(
        &app,
        &token,
        "POST",
        &format!("/api/v1/tenants/{id}/suspend"),
        json!({ "reason": "" }),
        "reason",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        &format!("/api/v1/tenants/{id}/suspend"),
        json!({ "reason": "r".repeat(501) }),
        "reason",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        &format!("/api/v1/tenants/{id}/restore"),
        json!({ "reason": "x" }),
        "backup_id",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        &format!("/api/v1/tenants/{id}/restore"),
        json!({ "reason": "x", "backup_id": "nope" }),
        "backup_id",
    )
    .await?;
    expect_field(
        &app,
        &token,
        "POST",
        &format!("/api/v1/tenants/{id}/change-plan"),
        json!({ "reason": "x", "plan": Uuid::new_v4() }),
        "plan",
    )
    .await?;

    // Query parameters name themselves too.
    for (path, field) in [
        ("/api/v1/tenants?limit=abc", "limit"),
        ("/api/v1/tenants?limit=100000", "limit"),
        ("/api/v1/tenants?cursor=zzzz", "cursor"),
        ("/api/v1/tenants?state=sleeping", "state"),
        ("/api/v1/tenants?plan=not-a-uuid", "plan"),
        ("/api/v1/tenants?sort=size", "sort"),
        ("/api/v1/operations?kind=reboot", "kind"),
        ("/api/v1/audit?since=yesterday", "since"),
    ] {
        let (status, body) = app.api(&token, "GET", path, None).await?;
        ensure!(
            status == 422 && body["error"]["field"] == field,
            "{path}: {status} {body}"
        );
    }
    // Not JSON at all: 400, never 500.
    let response = reqwest::Client::new()
        .post(app.url("/api/v1/plans"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    ensure!(response.status() == 400, "{}", response.status());
    let response = reqwest::Client::new()
        .post(app.url("/api/v1/plans"))
        .bearer_auth(&token)
        .body("code=x")
        .send()
        .await?;
    ensure!(
        response.status() == 400,
        "form body to the API: {}",
        response.status()
    );
    // Unknown ids are 404, malformed ones too.
    let (status, _) = app
        .api(
            &token,
            "GET",
            &format!("/api/v1/tenants/{}", Uuid::new_v4()),
            None,
        )
        .await?;
    ensure!(status == 404);
    let (status, _) = app.api(&token, "GET", "/api/v1/tenants/12", None).await?;
    ensure!(status == 404);

    // A form with bad input: 422 page naming the field.
    let csrf = owner.csrf("/plans").await?;
    let response = owner
        .post_form(
            "/plans",
            &[
                ("_csrf", csrf.as_str()),
                ("code", "ok"),
                ("name", "N"),
                ("max_users", "many"),
                ("max_storage_mb", "1"),
                ("template", "basic"),
            ],
        )
        .await?;
    ensure!(response.status() == 422, "{}", response.status());
    ensure!(
        response.text().await?.contains("max_users"),
        "field not named on the page"
    );
    let errors: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action LIKE 'plan.%'")
            .fetch_one(&app.pool)
            .await?;
    ensure!(errors == 0, "invalid input was written");
    Ok(())
}

#[tokio::test]
async fn plans_and_servers_in_use_cannot_be_deleted() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let token = app.token(&owner).await?;
    let seed = app.seed("basic").await?;
    let (status, plan) = app
        .api(&token, "POST", "/api/v1/plans", Some(json!({ "code": "starter", "name": "Starter", "max_users": 3, "max_storage_mb": 1024, "template": "basic", "modules": ["sale", "crm"] })))
        .await?;
    ensure!(status == 201, "{status} {plan}");
    let plan_id = plan["id"].as_str().unwrap_or_default().to_owned();
    ensure!(
        app.audit_count("plan.create", &format!("plan:{plan_id}"))
            .await?
            == 1
    );
    let (status, body) = app
        .api(
            &token,
            "PATCH",
            &format!("/api/v1/plans/{plan_id}"),
            Some(json!({ "price_cents": 1900 })),
        )
        .await?;
    ensure!(
        status == 200 && body["price_cents"] == 1900 && body["code"] == "starter",
        "{status} {body}"
    );
    let (status, body) = app.api(&token, "POST", "/api/v1/plans", Some(json!({ "code": "starter", "name": "Again", "max_users": 3, "max_storage_mb": 1024, "template": "basic" }))).await?;
    ensure!(
        status == 409 && body["error"]["field"] == "code",
        "{status} {body}"
    );
    let (status, created) = app
        .api(&token, "POST", "/api/v1/tenants", Some(json!({ "customer": seed.customer, "plan": plan_id, "subdomain": "uses-plan", "admin_password": "secret-pass" })))
        .await?;
    ensure!(status == 201, "{status} {created}");
    let (status, body) = app
        .api(&token, "DELETE", &format!("/api/v1/plans/{plan_id}"), None)
        .await?;
    ensure!(status == 409, "plan in use deleted: {status} {body}");
    let (status, body) = app
        .api(
            &token,
            "DELETE",
            &format!("/api/v1/servers/{}", seed.server),
            None,
        )
        .await?;
    ensure!(status == 409, "server in use deleted: {status} {body}");
    let (status, _) = app
        .api(
            &token,
            "DELETE",
            &format!("/api/v1/plans/{}", seed.plan),
            None,
        )
        .await?;
    ensure!(status == 204, "unused plan not deleted: {status}");
    ensure!(
        app.audit_count("plan.delete", &format!("plan:{}", seed.plan))
            .await?
            == 1
    );
    // Servers: owners create them; the pg_url's password is never shown.
    let (status, server) = app
        .api(&token, "POST", "/api/v1/servers", Some(json!({ "name": "odoo-2", "public_url": "https://odoo2.example.com", "internal_url": "http://odoo2:8069", "pg_url": "postgres://odoo:hunter2hunter@db2/postgres", "filestore_root": "/var/lib/odoo/filestore", "capacity": 50 })))
        .await?;
    ensure!(status == 201, "{status} {server}");
    ensure!(
        !server.to_string().contains("hunter2hunter"),
        "password shown: {server}"
    );
    let (status, list) = app.api(&token, "GET", "/api/v1/servers", None).await?;
    ensure!(
        status == 200 && list["items"].as_array().map_or(0, Vec::len) == 2,
        "{list}"
    );
    ensure!(list["items"][0]["tenant_count"].is_number());
    Ok(())
}

#[tokio::test]
async fn alertmanager_webhook_stores_alerts_for_the_dashboard() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let hook = |status: &str| {
        json!({
            "version": "4", "status": status, "receiver": "admin", "groupLabels": {}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "groupKey": "{}", "truncatedAlerts": 0,
            "alerts": [{ "status": status, "labels": { "alertname": "WorkerDown", "severity": "critical" },
                "annotations": { "summary": "no worker heartbeat" }, "startsAt": "2024-05-01T10:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus", "fingerprint": "abc123" }]
        })
    };
    let client = reqwest::Client::new();
    let refused = client
        .post(app.url("/api/v1/alerts"))
        .json(&hook("firing"))
        .send()
        .await?;
    ensure!(refused.status() == 401, "no token: {}", refused.status());
    let refused = client
        .post(app.url("/api/v1/alerts"))
        .bearer_auth("wrong-token-wrong-token")
        .json(&hook("firing"))
        .send()
        .await?;
    ensure!(refused.status() == 401, "wrong token: {}", refused.status());
    let accepted = client
        .post(app.url("/api/v1/alerts"))
        .bearer_auth(ALERT_TOKEN)
        .json(&hook("firing"))
        .send()
        .await?;
    ensure!(accepted.status() == 200, "firing: {}", accepted.status());
    let page = owner.get("/").await?.text().await?;
    ensure!(
        page.contains("WorkerDown") && page.contains("state-firing"),
        "firing alert not on the dashboard"
    );
    let token = app.token(&owner).await?;
    let (_, dashboard) = app.api(&token, "GET", "/api/v1/dashboard", None).await?;
    ensure!(
        dashboard["firing_alerts"][0]["name"] == "WorkerDown",
        "{dashboard}"
    );
    let resolved = client
        .post(app.url("/api/v1/alerts"))
        .bearer_auth(ALERT_TOKEN)
        .json(&hook("resolved"))
        .send()
        .await?;
    ensure!(resolved.status() == 200);
    let (_, dashboard) = app.api(&token, "GET", "/api/v1/dashboard", None).await?;
    ensure!(
        dashboard["firing_alerts"]
            .as_array()
            .is_some_and(Vec::is_empty),
        "{dashboard}"
    );
    let page = owner.get("/").await?.text().await?;
    ensure!(page.contains("state-resolved"), "resolved alert not shown");
    let bad = client
        .post(app.url("/api/v1/alerts"))
        .bearer_auth(ALERT_TOKEN)
        .header("content-type", "application/json")
        .body("{\"alerts\": 5}")
        .send()
        .await?;
    ensure!(bad.status() == 422, "bad payload: {}", bad.status());
    Ok(())
}

#[tokio::test]
async fn tenants_list_pages_filters_and_searches() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let token = app.token(&owner).await?;
    let seed = app.seed("basic").await?;
    sqlx::query(
        "INSERT INTO tenants (id, subdomain, customer_id, plan_id, server_id, state, db_name, created_at)
         SELECT gen_random_uuid(), 'shop-' || lpad(i::text, 3, '0'), $1, $2, $3,
                CASE WHEN i % 5 = 0 THEN 'suspended' ELSE 'active' END, 't_shop_' || i, now() - i * interval '1 minute'
         FROM generate_series(1, 120) AS i",
    )
    .bind(seed.customer)
    .bind(seed.plan)
    .bind(seed.server)
    .execute(&app.pool)
    .await?;
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/tenants?limit=50&cursor={c}"),
            None => "/api/v1/tenants?limit=50".to_owned(),
        };
        let (status, page) = app.api(&token, "GET", &path, None).await?;
        ensure!(status == 200, "{status} {page}");
        for item in page["items"].as_array().cloned().unwrap_or_default() {
            ensure!(
                seen.insert(item["id"].to_string()),
                "duplicate across pages"
            );
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    ensure!(
        seen.len() == 120 && pages == 3,
        "{} tenants in {pages} pages",
        seen.len()
    );
    let (_, newest) = app
        .api(&token, "GET", "/api/v1/tenants?limit=1", None)
        .await?;
    ensure!(newest["items"][0]["subdomain"] == "shop-001", "{newest}");
    let (_, by_name) = app
        .api(&token, "GET", "/api/v1/tenants?sort=name&limit=2", None)
        .await?;
    ensure!(by_name["items"][1]["subdomain"] == "shop-002", "{by_name}");
    let (_, suspended) = app
        .api(
            &token,
            "GET",
            "/api/v1/tenants?state=suspended&limit=200",
            None,
        )
        .await?;
    ensure!(
        suspended["items"].as_array().map_or(0, Vec::len) == 24,
        "{}",
        suspended["items"]
    );
    let (_, search) = app
        .api(&token, "GET", "/api/v1/tenants?q=shop-11", None)
        .await?;
    ensure!(
        search["items"].as_array().map_or(0, Vec::len) == 10,
        "{search}"
    );
    let (_, by_email) = app
        .api(
            &token,
            "GET",
            &format!("/api/v1/tenants?q={}", seed.customer_email),
            None,
        )
        .await?;
    ensure!(
        by_email["items"].as_array().map_or(0, Vec::len) == 50,
        "search by email"
    );
    let (_, wildcard) = app
        .api(&token, "GET", "/api/v1/tenants?q=%25", None)
        .await?;
    ensure!(
        wildcard["items"].as_array().is_some_and(Vec::is_empty),
        "LIKE wildcard not escaped"
    );
    // The page: filters and a next link that works.
    let page = owner
        .get("/tenants?state=active&sort=name")
        .await?
        .text()
        .await?;
    ensure!(
        page.contains("shop-001") && !page.contains(">shop-005<"),
        "state filter on the page"
    );
    let end = page.find("\" rel=\"next\"").unwrap_or(0);
    let start = page[..end].rfind("href=\"").map_or(end, |i| i + 6);
    let next = page[start..end].replace("&amp;", "&").replace("&#38;", "&");
    ensure!(next.starts_with("/tenants?"), "no next link");
    let second = owner.get(&next).await?.text().await?;
    ensure!(
        second.contains("shop-") && !second.contains(">shop-001<"),
        "next page {next} repeats the first"
    );
    Ok(())
}

#[tokio::test]
async fn every_page_renders_for_an_owner() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let token = app.token(&owner).await?;
    let seed = app.seed("basic").await?;
    let (_, created) = app
        .api(&token, "POST", "/api/v1/tenants", Some(json!({ "customer": seed.customer_email, "plan": seed.plan_code, "subdomain": "render-me", "admin_password": "secret-pass" })))
        .await?;
    let tenant = created["tenant"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pages = [
        "/".to_owned(),
        "/tenants".into(),
        "/tenants/new".into(),
        format!("/tenants/{tenant}"),
        format!("/tenants/{tenant}/live"),
        "/domains".into(),
        "/customers".into(),
        format!("/customers/{}", seed.customer),
        "/plans".into(),
        format!("/plans/{}", seed.plan),
        "/servers".into(),
        format!("/servers/{}", seed.server),
        "/operations".into(),
        "/operations?state=queued".into(),
        "/queues".into(),
        "/audit".into(),
        "/audit?action=tenant.".into(),
        "/operators".into(),
        "/tokens".into(),
        "/account".into(),
        "/static/admin.css".into(),
        "/static/admin.js".into(),
    ];
    for path in &pages {
        let response = owner.get(path).await?;
        ensure!(response.status() == 200, "{path}: {}", response.status());
    }
    let csv = owner.get("/audit.csv").await?;
    ensure!(
        csv.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            == Some("text/csv; charset=utf-8")
    );
    let text = csv.text().await?;
    ensure!(
        text.starts_with("id,created_at,actor,action") && text.contains("tenant.create"),
        "{text}"
    );
    for path in [
        "/no/such/page",
        "/tenants/12",
        &format!("/plans/{}", Uuid::new_v4()),
    ] {
        let missing = owner.get(path).await?;
        ensure!(missing.status() == 404, "{path}: {}", missing.status());
        let html = missing
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        ensure!(html, "{path}: not an HTML page");
    }
    Ok(())
}

#[tokio::test]
async fn operators_download_backups_and_viewers_cannot() -> anyhow::Result<()> {
    let store = tempfile::tempdir()?;
    let url = format!("file://{}", store.path().display());
    let app = TestApp::start_with(&[("BACKUP_STORE_URL", url.as_str())]).await?;
    let owner = app.owner().await?;
    let token = app.token(&owner).await?;
    let viewer = app.operator(&token, "viewer").await?;
    let viewer_token = app.token(&viewer).await?;
    let seed = app.seed("basic").await?;
    let (_, created) = app
        .api(&token, "POST", "/api/v1/tenants", Some(json!({ "customer": seed.customer_email, "plan": seed.plan_code, "subdomain": "has-backups", "admin_password": "secret-pass" })))
        .await?;
    let tenant = created["tenant"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    std::fs::create_dir_all(store.path().join("has-backups"))?;
    let zip = b"PK\x03\x04 not really a zip, but bytes to stream".repeat(1000);
    std::fs::write(store.path().join("has-backups/one.zip"), &zip)?;
    let (present, missing) = (Uuid::new_v4(), Uuid::new_v4());
    // Recorded as the worker records them: the zip's size and SHA-256.
    let sha = saas_core::auth::sha256_hex(std::str::from_utf8(&zip)?);
    for (id, key) in [
        (present, "has-backups/one.zip"),
        (missing, "has-backups/gone.zip"),
    ] {
        sqlx::query("INSERT INTO backups (id, tenant_id, object_key, size_bytes, sha256, kind) VALUES ($1, $2::uuid, $3, $4, $5, 'manual')")
            .bind(id)
            .bind(&tenant)
            .bind(key)
            .bind(i64::try_from(zip.len())?)
            .bind(&sha)
            .execute(&app.pool)
            .await?;
    }
    let client = reqwest::Client::new();
    let response = client
        .get(app.url(&format!("/api/v1/tenants/{tenant}/backups/{present}")))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(response.status() == 200, "download: {}", response.status());
    ensure!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            == Some("application/zip")
    );
    ensure!(
        response.bytes().await?.as_ref() == zip.as_slice(),
        "downloaded bytes differ"
    );
    ensure!(
        app.audit_count("backup.download", &format!("tenant:{tenant}"))
            .await?
            == 1
    );
    let page = owner
        .get(&format!("/tenants/{tenant}/backups/{present}"))
        .await?;
    ensure!(
        page.status() == 200 && page.bytes().await?.len() == zip.len(),
        "page download"
    );
    let (status, _) = app
        .api(
            &viewer_token,
            "GET",
            &format!("/api/v1/tenants/{tenant}/backups/{present}"),
            None,
        )
        .await?;
    ensure!(status == 403, "viewer download: {status}");
    ensure!(
        viewer
            .get(&format!("/tenants/{tenant}/backups/{present}"))
            .await?
            .status()
            == 403
    );
    let (status, _) = app
        .api(
            &token,
            "GET",
            &format!("/api/v1/tenants/{tenant}/backups/{missing}"),
            None,
        )
        .await?;
    ensure!(status == 404, "missing file: {status}");
    let (status, _) = app
        .api(
            &token,
            "GET",
            &format!("/api/v1/tenants/{}/backups/{present}", Uuid::new_v4()),
            None,
        )
        .await?;
    ensure!(status == 404, "backup of another tenant: {status}");
    // A corrupt copy (same size, other bytes) never downloads cleanly: its
    // SHA-256 is checked as it streams and the transfer breaks at the end
    // (before the head is even sent, when the whole copy fits in one chunk).
    let mut rotten = zip.clone();
    rotten[zip.len() / 2] ^= 0x20;
    std::fs::write(store.path().join("has-backups/one.zip"), &rotten)?;
    let sent = client
        .get(app.url(&format!("/api/v1/tenants/{tenant}/backups/{present}")))
        .bearer_auth(&token)
        .send()
        .await;
    let downloaded = match sent {
        Ok(response) => response.bytes().await.is_ok(),
        Err(_) => false,
    };
    ensure!(!downloaded, "a corrupt copy downloaded without an error");
    Ok(())
}
