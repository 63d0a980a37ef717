//! The Odoo admin password of an instance: chosen at creation, shown login,
//! and reset by its customer (page and API), against the real portal; with
//! the real worker and the Odoo 18 fixture, the hash in the tenant's
//! database verifies with the new password.

mod common;

use std::time::Duration;

use anyhow::{Context as _, ensure};
use common::platform::{options, start_worker};
use common::{PASSWORD, TestApp, set_state};
use reqwest::Method;
use saas_core::auth::odoo_password::verify_password;
use saas_testkit::odoo::OdooWorld;
use serde_json::{Value, json};
use sqlx::Connection as _;
use uuid::Uuid;

const NEW_PASSWORD: &str = "violet-harbour-lantern-7";

fn path(id: Uuid) -> String {
    format!("/api/v1/instances/{id}/admin-password")
}

async fn field_of(response: reqwest::Response) -> anyhow::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let body: Value = response.json().await?;
    Ok((status, body["error"]["field"].clone()))
}

#[tokio::test]
async fn a_reset_is_validated_authorised_audited_and_repeatable() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let alice = app.customer("alice@example.com").await?;
    let bob = app.customer("bob@example.com").await?;
    let (id, _) = alice.create_instance("alice-shop").await?;

    // Another customer's instance is not found, whatever the body.
    let refused = bob
        .api(
            Method::POST,
            &path(id),
            Some(json!({ "admin_password": NEW_PASSWORD })),
        )
        .await?;
    ensure!(refused.status() == 404, "bob: {}", refused.status());
    let refused = bob
        .post_form(
            &format!("/instances/{id}/admin-password"),
            &[
                ("admin_password", NEW_PASSWORD),
                ("admin_password_repeat", NEW_PASSWORD),
            ],
        )
        .await?;
    ensure!(refused.status() == 404, "bob's form: {}", refused.status());

    // Not while the instance is being provisioned.
    let (status, _) = field_of(
        alice
            .api(
                Method::POST,
                &path(id),
                Some(json!({ "admin_password": NEW_PASSWORD })),
            )
            .await?,
    )
    .await?;
    ensure!(status == 409, "reset while provisioning: {status}");
    set_state(&app, id, "active").await?;

    for (body, expected) in [
        (json!({ "admin_password": "short" }), 422),
        (json!({ "admin_password": "passwordpassword" }), 422),
        (json!({ "admin_password": "long enough\u{0}but NUL" }), 422),
        (
            json!({ "admin_password": "line\nbreak in a password" }),
            422,
        ),
        (json!({ "admin_password": 42 }), 422),
        (json!({}), 422),
    ] {
        let (status, field) = field_of(
            alice
                .api(Method::POST, &path(id), Some(body.clone()))
                .await?,
        )
        .await?;
        ensure!(
            status == expected && field == "admin_password",
            "{body}: {status} {field}"
        );
    }
    let mismatch = alice
        .post_form(
            &format!("/instances/{id}/admin-password"),
            &[
                ("admin_password", NEW_PASSWORD),
                ("admin_password_repeat", "violet-harbour-lantern-8"),
            ],
        )
        .await?;
    ensure!(mismatch.status() == 422, "mismatch: {}", mismatch.status());
    let page = mismatch.text().await?;
    ensure!(
        page.contains("data-field=\"admin_password_repeat\""),
        "the page does not name the field"
    );
    let no_csrf = alice
        .client
        .post(alice.url(&format!("/instances/{id}/admin-password")))
        .form(&[
            ("admin_password", NEW_PASSWORD),
            ("admin_password_repeat", NEW_PASSWORD),
        ])
        .send()
        .await?;
    ensure!(
        no_csrf.status().is_client_error(),
        "no CSRF token: {}",
        no_csrf.status()
    );
    let resets: i64 =
        sqlx::query_scalar("SELECT count(*) FROM operations WHERE kind = 'reset_admin_password'")
            .fetch_one(&app.pool)
            .await?;
    ensure!(resets == 0, "a refused request made an operation");

    // Accepted; asked again (a double click, a retried request), the same
    // operation carries the newest password.
    let accepted = alice
        .api(
            Method::POST,
            &path(id),
            Some(json!({ "admin_password": NEW_PASSWORD })),
        )
        .await?;
    ensure!(accepted.status() == 202, "reset: {}", accepted.status());
    let body: Value = accepted.json().await?;
    ensure!(
        body["operation"]["kind"] == "reset_admin_password",
        "{body}"
    );
    ensure!(!body.to_string().contains(NEW_PASSWORD), "{body}");
    let op: Uuid = body["operation"]["id"]
        .as_str()
        .context("no operation id")?
        .parse()?;
    let again = alice
        .post_form(
            &format!("/instances/{id}/admin-password"),
            &[
                ("admin_password", NEW_PASSWORD),
                ("admin_password_repeat", NEW_PASSWORD),
            ],
        )
        .await?;
    ensure!(again.status() == 303, "form: {}", again.status());
    let location = again
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ensure!(location.ends_with("?done=password"), "{location}");
    let page = alice
        .client
        .get(alice.url(&location))
        .send()
        .await?
        .text()
        .await?;
    ensure!(
        page.contains("New Odoo admin password requested"),
        "no notice"
    );
    ensure!(
        page.contains("reset_admin_password"),
        "not in the operations list"
    );
    let ops: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM operations WHERE kind = 'reset_admin_password' AND tenant_id = $1",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await?;
    ensure!(ops == [op], "{ops:?}");
    ensure!(saas_core::ops::secrets::held(&app.pool, op).await?);
    let audit: Vec<(String, Value)> = sqlx::query_as(
        "SELECT actor, details FROM audit_log WHERE action = 'tenant.reset_admin_password' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await?;
    ensure!(audit.len() == 2, "{audit:?}");
    ensure!(
        audit
            .iter()
            .all(|(actor, _)| actor == "customer:alice@example.com"),
        "{audit:?}"
    );
    ensure!(
        !format!("{audit:?}").contains(NEW_PASSWORD),
        "the password is in the audit log"
    );
    Ok(())
}

async fn wait_api(
    customer: &common::Customer,
    path: &str,
    done: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    for _ in 0..900 {
        let body: Value = customer.api(Method::GET, path, None).await?.json().await?;
        if done(&body) {
            return Ok(body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{path} never got there")
}

async fn admin_hash(db: &str) -> anyhow::Result<String> {
    let mut odoo = sqlx::PgConnection::connect(&saas_testkit::database_url(db)?).await?;
    Ok(
        sqlx::query_scalar("SELECT password FROM res_users WHERE id = 2")
            .fetch_one(&mut odoo)
            .await?,
    )
}

#[tokio::test]
async fn a_reset_through_the_portal_sets_a_hash_odoo_accepts() -> anyhow::Result<()> {
    let world = OdooWorld::new().await?;
    let app = TestApp::start_with(options(&world)).await?;
    let worker = start_worker(&app, &world).await?;
    let customer = app
        .customer(&format!("o-{}@example.com", world.suffix))
        .await?;
    let subdomain = format!("pw-{}", world.suffix);
    let (id, _) = customer.create_instance(&subdomain).await?;
    let instance = format!("/api/v1/instances/{id}");
    let shown = wait_api(&customer, &instance, |b| {
        b["instance"]["state"] == "active" && b["pending_operations"] == 0
    })
    .await
    .with_context(|| worker.log())?;
    ensure!(
        shown["instance"]["odoo_login"] == customer.email.as_str(),
        "{shown}"
    );
    // The worker hashed the password the request sealed.
    let created = admin_hash(&subdomain).await?;
    ensure!(verify_password(PASSWORD, &created), "{created}");

    let response = customer
        .api(
            Method::POST,
            &path(id),
            Some(json!({ "admin_password": NEW_PASSWORD })),
        )
        .await?;
    ensure!(response.status() == 202, "reset: {}", response.status());
    let body: Value = response.json().await?;
    let op = body["operation"]["id"]
        .as_str()
        .context("no id")?
        .to_owned();
    let finished = wait_api(&customer, &format!("/api/v1/operations/{op}"), |b| {
        matches!(
            b["operation"]["state"].as_str(),
            Some("succeeded" | "failed")
        )
    })
    .await
    .with_context(|| worker.log())?;
    ensure!(
        finished["operation"]["state"] == "succeeded",
        "{finished}\n{}",
        worker.log()
    );
    let reset = admin_hash(&subdomain).await?;
    ensure!(
        reset.starts_with("$pbkdf2-sha512$600000$")
            && verify_password(NEW_PASSWORD, &reset)
            && !verify_password(PASSWORD, &reset),
        "{reset}"
    );
    ensure!(
        !worker.log().contains(NEW_PASSWORD) && !app.process.log().contains(NEW_PASSWORD),
        "the password is in a log"
    );
    Ok(())
}
