//! Instances, backups, plans, tokens and the JSON API against the real
//! binary (no worker: operations stay queued; states are set in SQL where a
//! test needs an active instance).

mod common;

use anyhow::{Context, ensure};
use common::{PASSWORD, TestApp, seed_backup, set_state, zip_bytes};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test]
async fn anonymous_requests_are_refused() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let client = TestApp::client()?;
    let id = Uuid::new_v4();
    for path in [
        "/instances",
        "/instances/new",
        "/tokens",
        &format!("/instances/{id}"),
        &format!("/backups/{id}/download"),
    ] {
        let response = client.get(app.url(path)).send().await?;
        ensure!(
            response.status() == 303,
            "GET {path}: {}",
            response.status()
        );
        let location = response
            .headers()
            .get("location")
            .context("no location")?
            .to_str()?;
        ensure!(location.starts_with("/login"), "{path} -> {location}");
    }
    for (method, path) in [
        (Method::GET, "/api/v1/instances".to_owned()),
        (Method::POST, "/api/v1/instances".to_owned()),
        (Method::GET, format!("/api/v1/instances/{id}")),
        (Method::GET, format!("/api/v1/operations/{id}")),
        (Method::GET, "/api/v1/tokens".to_owned()),
        (Method::GET, "/api/v1/subdomains/shop".to_owned()),
    ] {
        let response = client
            .request(method.clone(), app.url(&path))
            .send()
            .await?;
        ensure!(
            response.status() == 401,
            "{method} {path}: {}",
            response.status()
        );
        let body: Value = response.json().await?;
        ensure!(body["error"]["code"] == "unauthorized", "{body}");
    }
    let forged = client
        .get(app.url("/api/v1/instances"))
        .bearer_auth("osc_0123456789abcdef")
        .send()
        .await?;
    ensure!(forged.status() == 401);
    Ok(())
}

/// Every route that takes an id answers another customer exactly like a
/// missing id: same status, same body.
#[tokio::test]
async fn another_customers_ids_answer_404_like_missing_ones() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let alice = app.customer("alice@example.com").await?;
    let bob = app.customer("bob@example.com").await?;
    let (instance, operation) = alice.create_instance("alice-shop").await?;
    set_state(&app, instance, "active").await?;
    let backup = seed_backup(&app, instance, &zip_bytes(&[("dump.sql", b"--")])?).await?;
    let token: Value = alice
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": "ci" })),
        )
        .await?
        .json()
        .await?;
    let token = token["token"]["id"]
        .as_str()
        .context("no token id")?
        .to_owned();
    let (instance, backup, operation) = (
        instance.to_string(),
        backup.to_string(),
        operation.to_string(),
    );
    let missing = Uuid::new_v4().to_string();

    let web: Vec<(Method, String)> = vec![
        (Method::GET, "/instances/{i}".into()),
        (Method::POST, "/instances/{i}/backups".into()),
        (Method::POST, "/instances/{i}/plan".into()),
        (Method::POST, "/instances/{i}/delete".into()),
        (Method::POST, "/instances/{i}/upload".into()),
        (Method::GET, "/backups/{b}/download".into()),
        (Method::POST, "/backups/{b}/restore".into()),
        (Method::POST, "/tokens/{t}/revoke".into()),
    ];
    let api: Vec<(Method, String)> = vec![
        (Method::GET, "/api/v1/instances/{i}".into()),
        (
            Method::DELETE,
            "/api/v1/instances/{i}?confirm=alice-shop".into(),
        ),
        (Method::POST, "/api/v1/instances/{i}/plan".into()),
        (Method::GET, "/api/v1/instances/{i}/operations".into()),
        (Method::GET, "/api/v1/instances/{i}/backups".into()),
        (Method::POST, "/api/v1/instances/{i}/backups".into()),
        (
            Method::POST,
            "/api/v1/instances/{i}/backups/upload?confirm=alice-shop".into(),
        ),
        (Method::GET, "/api/v1/backups/{b}".into()),
        (Method::GET, "/api/v1/backups/{b}/download".into()),
        (Method::POST, "/api/v1/backups/{b}/restore".into()),
        (Method::GET, "/api/v1/operations/{o}".into()),
        (Method::DELETE, "/api/v1/tokens/{t}".into()),
    ];
    let fill = |path: &str, i: &str, b: &str, o: &str, t: &str| {
        path.replace("{i}", i)
            .replace("{b}", b)
            .replace("{o}", o)
            .replace("{t}", t)
    };
    for (method, template) in web {
        let theirs = fill(&template, &instance, &backup, &operation, &token);
        let absent = fill(&template, &missing, &missing, &missing, &missing);
        let send = |path: String| {
            let request = bob.client.request(method.clone(), bob.url(&path));
            let request = if method == Method::POST {
                request.form(&[
                    ("csrf_token", bob.csrf.as_str()),
                    ("confirm", "alice-shop"),
                    ("plan", "small"),
                ])
            } else {
                request
            };
            async move {
                let response = request.send().await?;
                Ok::<_, anyhow::Error>((response.status(), response.text().await?))
            }
        };
        let (a, b) = (send(theirs.clone()).await?, send(absent).await?);
        ensure!(a.0 == 404, "{method} {theirs}: {}", a.0);
        ensure!(a == b, "{method} {theirs} differs from a missing id");
    }
    for (method, template) in api {
        let theirs = fill(&template, &instance, &backup, &operation, &token);
        let absent = fill(&template, &missing, &missing, &missing, &missing);
        let body = json!({ "confirm": "alice-shop", "plan": "small" });
        let a = bob.api(method.clone(), &theirs, Some(body.clone())).await?;
        let b = bob.api(method.clone(), &absent, Some(body)).await?;
        let (a, b) = ((a.status(), a.text().await?), (b.status(), b.text().await?));
        ensure!(a.0 == 404, "{method} {theirs}: {} {}", a.0, a.1);
        ensure!(a == b, "{method} {theirs} differs from a missing id");
    }
    // The owner still sees everything.
    ensure!(
        alice
            .client
            .get(alice.url(&format!("/instances/{instance}")))
            .send()
            .await?
            .status()
            == 200
    );
    ensure!(
        alice
            .api(
                Method::GET,
                &format!("/api/v1/operations/{operation}"),
                None
            )
            .await?
            .status()
            == 200
    );
    ensure!(
        alice
            .client
            .get(alice.url(&format!("/backups/{backup}/download")))
            .send()
            .await?
            .status()
            == 200
    );
    let listed: Value = bob
        .api(Method::GET, "/api/v1/instances", None)
        .await?
        .json()
        .await?;
    ensure!(
        listed["instances"].as_array().is_some_and(Vec::is_empty),
        "{listed}"
    );
    Ok(())
}

#[tokio::test]
async fn bad_input_names_the_field() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("f@example.com").await?;
    for (body, field, status) in [
        (
            json!({ "subdomain": "Bad_Name", "admin_password": PASSWORD }),
            "subdomain",
            422,
        ),
        (
            json!({ "subdomain": "admin", "admin_password": PASSWORD }),
            "subdomain",
            422,
        ),
        (json!({ "subdomain": "ok-name" }), "admin_password", 422),
        (
            json!({ "subdomain": "ok-name", "admin_password": "short" }),
            "admin_password",
            422,
        ),
        (
            json!({ "subdomain": "ok-name", "admin_password": PASSWORD, "plan": "gold" }),
            "plan",
            422,
        ),
        (json!({ "admin_password": PASSWORD }), "subdomain", 422),
    ] {
        let response = customer
            .api(Method::POST, "/api/v1/instances", Some(body.clone()))
            .await?;
        ensure!(response.status() == status, "{body}: {}", response.status());
        let error: Value = response.json().await?;
        ensure!(error["error"]["field"] == field, "{body}: {error}");
        ensure!(error["error"]["code"] == "invalid" && error["error"]["message"].is_string());
    }
    let page = customer
        .post_form(
            "/instances",
            &[
                ("subdomain", "-bad"),
                ("admin_password", PASSWORD),
                ("plan", "trial"),
            ],
        )
        .await?;
    ensure!(page.status() == 422);
    ensure!(page.text().await?.contains("data-field=\"subdomain\""));
    let token = customer
        .api(Method::POST, "/api/v1/tokens", Some(json!({ "name": "" })))
        .await?;
    ensure!(token.status() == 422);
    let error: Value = token.json().await?;
    ensure!(error["error"]["field"] == "name");
    Ok(())
}

#[tokio::test]
async fn two_customers_racing_for_one_subdomain_exactly_one_wins() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let a = app.customer("race-a@example.com").await?;
    let b = app.customer("race-b@example.com").await?;
    let body = json!({ "subdomain": "contested", "admin_password": PASSWORD });
    let (ra, rb) = tokio::join!(
        a.api(Method::POST, "/api/v1/instances", Some(body.clone())),
        b.api(Method::POST, "/api/v1/instances", Some(body.clone())),
    );
    let mut statuses = vec![ra?.status().as_u16(), rb?.status().as_u16()];
    statuses.sort();
    ensure!(statuses == [202, 409], "{statuses:?}");
    let loser = a.api(Method::POST, "/api/v1/instances", Some(body)).await?;
    let error: Value = loser.json().await?;
    ensure!(error["error"]["field"] == "subdomain", "{error}");
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tenants WHERE subdomain = 'contested'")
            .fetch_one(&app.pool)
            .await?;
    ensure!(count == 1);
    Ok(())
}

#[tokio::test]
async fn creation_needs_a_verified_address_and_respects_the_instance_limit() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("lim@example.com").await?;
    sqlx::query("UPDATE customers SET email_verified_at = NULL")
        .execute(&app.pool)
        .await?;
    let refused = customer
        .api(
            Method::POST,
            "/api/v1/instances",
            Some(json!({ "subdomain": "first", "admin_password": PASSWORD })),
        )
        .await?;
    ensure!(refused.status() == 409, "unverified: {}", refused.status());
    sqlx::query("UPDATE customers SET email_verified_at = now()")
        .execute(&app.pool)
        .await?;
    let (id, _) = customer.create_instance("first").await?;
    customer.create_instance("second").await?;
    let third = customer
        .api(
            Method::POST,
            "/api/v1/instances",
            Some(json!({ "subdomain": "third", "admin_password": PASSWORD })),
        )
        .await?;
    ensure!(third.status() == 409);
    let error: Value = third.json().await?;
    ensure!(
        error["error"]["field"] == "plan"
            && error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("2 instances")),
        "{error}"
    );
    // The page shows progress, the trial and the open link's address.
    let page = customer
        .client
        .get(customer.url(&format!("/instances/{id}")))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        page.contains("data-poll=") && page.contains("trial: 14 days left"),
        "no progress or trial on the page"
    );
    set_state(&app, id, "active").await?;
    let page = customer
        .client
        .get(customer.url(&format!("/instances/{id}")))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        page.contains("href=\"http://first.saas.test\""),
        "no open link"
    );
    ensure!(
        page.contains(&format!("Odoo login: <code>{}</code>", customer.email)),
        "no Odoo login next to the open link"
    );
    // The admin password is kept only sealed, with its operation, and never
    // shown: not in the arguments, the page, the API or the audit log.
    let (op, args): (Uuid, Value) = sqlx::query_as(
        "SELECT id, args FROM operations WHERE tenant_id = $1 AND kind = 'provision'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await?;
    ensure!(
        saas_core::ops::secrets::held(&app.pool, op).await?,
        "no sealed password with the provision"
    );
    ensure!(!args.to_string().contains(PASSWORD) && !args.to_string().contains("password"));
    ensure!(!page.contains(PASSWORD));
    let api: Value = customer
        .api(Method::GET, &format!("/api/v1/instances/{id}"), None)
        .await?
        .json()
        .await?;
    ensure!(!api.to_string().contains(PASSWORD), "{api}");
    ensure!(
        api["instance"]["odoo_login"] == customer.email.as_str(),
        "{api}"
    );
    let audit: String =
        sqlx::query_scalar("SELECT coalesce(string_agg(details::text, ' '), '') FROM audit_log")
            .fetch_one(&app.pool)
            .await?;
    ensure!(!audit.contains(PASSWORD), "{audit}");
    Ok(())
}

#[tokio::test]
async fn subdomain_availability_is_checked_live() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("live@example.com").await?;
    customer.create_instance("taken-one").await?;
    for (name, available) in [
        ("taken-one", false),
        ("admin", false),
        ("x", false),
        ("free-one", true),
    ] {
        let body: Value = customer
            .api(Method::GET, &format!("/api/v1/subdomains/{name}"), None)
            .await?
            .json()
            .await?;
        ensure!(body["available"] == available, "{name}: {body}");
    }
    let page = customer
        .client
        .get(customer.url("/instances/new"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        page.contains("data-check=\"/api/v1/subdomains/\"")
            && page.contains("value=\"trial\" checked")
    );
    Ok(())
}

#[tokio::test]
async fn backups_download_streams_to_the_owner_as_an_attachment() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("dl@example.com").await?;
    let (id, _) = customer.create_instance("dl-shop").await?;
    set_state(&app, id, "active").await?;
    let zip = zip_bytes(&[("dump.sql", b"-- dump"), ("manifest.json", b"{}")])?;
    let backup = seed_backup(&app, id, &zip).await?;
    let response = customer
        .client
        .get(customer.url(&format!("/backups/{backup}/download")))
        .send()
        .await?;
    ensure!(response.status() == 200);
    let disposition = response
        .headers()
        .get("content-disposition")
        .context("no disposition")?
        .to_str()?
        .to_owned();
    ensure!(
        disposition.starts_with("attachment; filename=\"dl-shop-"),
        "{disposition}"
    );
    ensure!(response.bytes().await?.as_ref() == zip.as_slice());
    let listed: Value = customer
        .api(
            Method::GET,
            &format!("/api/v1/instances/{id}/backups"),
            None,
        )
        .await?
        .json()
        .await?;
    ensure!(
        listed["backups"][0]["id"] == backup.to_string()
            && listed["backups"][0].get("object_key").is_none()
    );
    // Back up now and restore (typed confirmation) become operations.
    let now = customer
        .post_form(&format!("/instances/{id}/backups"), &[])
        .await?;
    ensure!(now.status() == 303);
    let wrong = customer
        .post_form(
            &format!("/backups/{backup}/restore"),
            &[("confirm", "nope")],
        )
        .await?;
    ensure!(wrong.status() == 422 && wrong.text().await?.contains("data-field=\"confirm\""));
    let right = customer
        .post_form(
            &format!("/backups/{backup}/restore"),
            &[("confirm", "dl-shop")],
        )
        .await?;
    ensure!(right.status() == 303);
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM operations WHERE tenant_id = $1 ORDER BY created_at")
            .bind(id)
            .fetch_all(&app.pool)
            .await?;
    ensure!(kinds == ["provision", "backup", "restore"], "{kinds:?}");
    let restore_args: Value =
        sqlx::query_scalar("SELECT args FROM operations WHERE tenant_id = $1 AND kind = 'restore'")
            .bind(id)
            .fetch_one(&app.pool)
            .await?;
    ensure!(restore_args["backup_id"] == backup.to_string());
    Ok(())
}

#[tokio::test]
async fn uploads_are_validated_before_anything_is_stored() -> anyhow::Result<()> {
    let app = TestApp::start_with(common::Options {
        extra_env: vec![("MAX_UPLOAD_MB".into(), "1".into())],
        ..Default::default()
    })
    .await?;
    let customer = app.customer("up@example.com").await?;
    let (id, _) = customer.create_instance("up-shop").await?;
    set_state(&app, id, "active").await?;
    let path = format!("/api/v1/instances/{id}/backups/upload?confirm=up-shop");
    let send = |body: Vec<u8>, path: String| {
        customer
            .client
            .post(customer.url(&path))
            .header("x-csrf-token", &customer.csrf)
            .header("content-type", "application/zip")
            .body(body)
            .send()
    };
    for (body, status, needle) in [
        (b"not a zip at all".to_vec(), 422, "zip"),
        (zip_bytes(&[("manifest.json", b"{}")])?, 422, "dump.sql"),
        (
            zip_bytes(&[("dump.sql", b"--"), ("../../etc/cron.d/x", b"x")])?,
            422,
            "..",
        ),
        (
            zip_bytes(&[("dump.sql", b"--"), ("/abs", b"x")])?,
            422,
            "absolute",
        ),
        // Just over the limit: the rest fits in socket buffers, so the early 413 is read.
        (vec![0u8; 1024 * 1024 + 64 * 1024], 413, "MB"),
    ] {
        let response = send(body, path.clone()).await?;
        ensure!(
            response.status() == status,
            "{needle}: {}",
            response.status()
        );
        let error: Value = response.json().await?;
        ensure!(error["error"]["field"] == "file", "{error}");
        ensure!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(needle)),
            "{error}"
        );
    }
    let unconfirmed = send(
        zip_bytes(&[("dump.sql", b"--")])?,
        format!("/api/v1/instances/{id}/backups/upload"),
    )
    .await?;
    ensure!(unconfirmed.status() == 422);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM backups")
        .fetch_one(&app.pool)
        .await?;
    let files = std::fs::read_dir(app.backups_dir.path())?.count();
    ensure!(
        stored == 0 && files == 0,
        "something was stored: {stored} rows, {files} files"
    );

    let good = zip_bytes(&[
        ("dump.sql", b"-- dump"),
        ("manifest.json", b"{\"version\": \"18.0\"}"),
        ("filestore/ab/x", b"x"),
    ])?;
    let accepted = send(good.clone(), path).await?;
    ensure!(accepted.status() == 202, "good zip: {}", accepted.status());
    let body: Value = accepted.json().await?;
    ensure!(
        body["backup"]["kind"] == "upload" && body["operation"]["kind"] == "restore",
        "{body}"
    );
    let (key, db_name): (String, String) = sqlx::query_as(
        "SELECT b.object_key, t.db_name FROM backups b JOIN tenants t ON t.id = b.tenant_id WHERE b.kind = 'upload'",
    )
    .fetch_one(&app.pool)
    .await?;
    ensure!(
        key.starts_with(&format!("{db_name}/")),
        "{key} is not under the tenant's prefix"
    );
    ensure!(std::fs::read(app.backups_dir.path().join(&key))? == good);

    // The web form: multipart with the CSRF token first.
    let form = multipart_form(
        &customer.csrf,
        "up-shop",
        &zip_bytes(&[("dump.sql", b"--")])?,
    );
    let page = customer
        .client
        .post(customer.url(&format!("/instances/{id}/upload")))
        .header("content-type", form.0)
        .body(form.1)
        .send()
        .await?;
    ensure!(page.status() == 303, "multipart upload: {}", page.status());
    Ok(())
}

/// A hand-made `multipart/form-data` body (reqwest's multipart feature is not needed).
fn multipart_form(csrf: &str, confirm: &str, zip: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----portaltestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, value) in [("csrf_token", csrf), ("confirm", confirm)] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.zip\"\r\nContent-Type: application/zip\r\n\r\n").as_bytes());
    body.extend_from_slice(zip);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn plan_change_is_refused_with_the_reason_when_usage_exceeds_it() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("plan@example.com").await?;
    let (id, _) = customer.create_instance("plan-shop").await?;
    set_state(&app, id, "active").await?;
    sqlx::query(
        "UPDATE tenants SET usage_users = 5, usage_db_bytes = 2000 * 1024 * 1024 WHERE id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await?;
    let refused = customer
        .api(
            Method::POST,
            &format!("/api/v1/instances/{id}/plan"),
            Some(json!({ "plan": "small" })),
        )
        .await?;
    ensure!(refused.status() == 409);
    let error: Value = refused.json().await?;
    let message = error["error"]["message"].as_str().unwrap_or_default();
    ensure!(
        error["error"]["field"] == "plan"
            && message.contains("5 active users, the plan allows 3")
            && message.contains("MB"),
        "{error}"
    );
    sqlx::query("UPDATE tenants SET usage_users = 2, usage_db_bytes = 0 WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await?;
    let page = customer
        .post_form(&format!("/instances/{id}/plan"), &[("plan", "small")])
        .await?;
    ensure!(
        page.status() == 303,
        "fitting plan change: {}",
        page.status()
    );
    let args: Value = sqlx::query_scalar(
        "SELECT args FROM operations WHERE tenant_id = $1 AND kind = 'change_plan'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await?;
    ensure!(args["plan_id"] == app.small_plan.to_string());
    Ok(())
}

#[tokio::test]
async fn delete_needs_the_typed_name_and_suspended_instances_say_why() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("del@example.com").await?;
    let (id, _) = customer.create_instance("del-shop").await?;
    set_state(&app, id, "suspended").await?;
    sqlx::query(
        "UPDATE tenants SET suspend_reason = 'the invoice of March is unpaid' WHERE id = $1",
    )
    .bind(id)
    .execute(&app.pool)
    .await?;
    let page = customer
        .client
        .get(customer.url(&format!("/instances/{id}")))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        page.contains("id=\"suspended\"")
            && page.contains("the invoice of March is unpaid")
            && page.contains("Contact support")
    );
    let wrong = customer
        .post_form(&format!("/instances/{id}/delete"), &[("confirm", "del")])
        .await?;
    ensure!(wrong.status() == 422 && wrong.text().await?.contains("data-field=\"confirm\""));
    let api_wrong = customer
        .api(Method::DELETE, &format!("/api/v1/instances/{id}"), None)
        .await?;
    let error: Value = api_wrong.json().await?;
    ensure!(error["error"]["field"] == "confirm", "{error}");
    let right = customer
        .post_form(
            &format!("/instances/{id}/delete"),
            &[("confirm", "del-shop")],
        )
        .await?;
    ensure!(right.status() == 303);
    let (state, args): (String, Value) = sqlx::query_as(
        "SELECT t.state, o.args FROM tenants t JOIN operations o ON o.tenant_id = t.id AND o.kind = 'delete' WHERE t.id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await?;
    ensure!(
        state == "deleting" && args["grace_days"] == 14,
        "{state} {args}"
    );
    Ok(())
}

#[tokio::test]
async fn api_tokens_are_shown_once_hashed_and_revocable() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("tok@example.com").await?;
    let page = customer
        .post_form("/tokens", &[("name", "deploy")])
        .await?
        .text()
        .await?;
    let start = page
        .find("<pre id=\"new-token\">")
        .context("token not shown")?
        + "<pre id=\"new-token\">".len();
    let secret = page[start..]
        .split('<')
        .next()
        .context("no secret")?
        .to_owned();
    ensure!(secret.starts_with("osc_"));
    let listed = customer
        .client
        .get(customer.url("/tokens"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(!listed.contains(&secret), "secret shown again");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens WHERE token_hash = $1")
        .bind(saas_core::auth::sha256_hex(&secret))
        .fetch_one(&app.pool)
        .await?;
    ensure!(stored == 1);
    let bare = TestApp::client()?;
    let ok = bare
        .get(app.url("/api/v1/instances"))
        .bearer_auth(&secret)
        .send()
        .await?;
    ensure!(ok.status() == 200);
    // A bearer token needs no CSRF header.
    let created = bare
        .post(app.url("/api/v1/instances"))
        .bearer_auth(&secret)
        .json(&json!({ "subdomain": "by-token", "admin_password": PASSWORD }))
        .send()
        .await?;
    ensure!(
        created.status() == 202,
        "create with token: {}",
        created.status()
    );
    let op: Value = created.json().await?;
    let op_id = op["operation"]["id"].as_str().context("no op")?;
    let status: Value = bare
        .get(app.url(&format!("/api/v1/operations/{op_id}")))
        .bearer_auth(&secret)
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        status["operation"]["state"] == "queued" && status["operation"]["kind"] == "provision",
        "{status}"
    );
    let tokens: Value = bare
        .get(app.url("/api/v1/tokens"))
        .bearer_auth(&secret)
        .send()
        .await?
        .json()
        .await?;
    let id = tokens["tokens"][0]["id"]
        .as_str()
        .context("no id")?
        .to_owned();
    ensure!(!tokens.to_string().contains(&secret));
    let revoked = bare
        .delete(app.url(&format!("/api/v1/tokens/{id}")))
        .bearer_auth(&secret)
        .send()
        .await?;
    ensure!(revoked.status() == 204);
    let after = bare
        .get(app.url("/api/v1/instances"))
        .bearer_auth(&secret)
        .send()
        .await?;
    ensure!(after.status() == 401);
    Ok(())
}

#[tokio::test]
async fn openapi_document_describes_every_api_route() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let client = TestApp::client()?;
    let doc: Value = client
        .get(app.url("/api/openapi.json"))
        .send()
        .await?
        .json()
        .await?;
    ensure!(doc["openapi"] == "3.1.0");
    // Every row of the route table is documented ...
    let source = include_str!("../src/routes/api.rs");
    let mut routes = 0;
    for line in source
        .lines()
        .filter(|l| l.trim_start().starts_with("api!(\""))
    {
        let mut quoted = line.split('"').skip(1).step_by(2);
        let (Some(method), Some(path)) = (quoted.next(), quoted.next()) else {
            anyhow::bail!("unreadable route line {line}");
        };
        ensure!(
            doc["paths"][path].get(method.to_lowercase()).is_some(),
            "{method} {path} is not in the OpenAPI document"
        );
        routes += 1;
    }
    ensure!(routes >= 23, "found only {routes} routes");
    // ... and every documented operation is served: without a token it
    // answers 401, never 404 or 405.
    let id = "00000000-0000-0000-0000-000000000000";
    for (path, operations) in doc["paths"].as_object().context("no paths")? {
        for method in operations.as_object().context("no operations")?.keys() {
            let url = app.url(
                &path
                    .replace("{id}", id)
                    .replace("{domain_id}", id)
                    .replace("{name}", "acme"),
            );
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes())?;
            let status = client.request(method.clone(), &url).send().await?.status();
            ensure!(
                status == 401,
                "{method} {path} answered {status} without a token"
            );
        }
    }
    ensure!(doc["components"]["schemas"]["Error"].is_object());
    Ok(())
}
