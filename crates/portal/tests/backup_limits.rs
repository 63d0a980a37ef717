//! Manual and uploaded backups count against the plan's limit, and a failed
//! operation shows the customer only the worker's customer text, never the
//! operators' reason (real binary; operations stay queued, outcomes are
//! written in SQL as the worker writes them).

mod common;

use anyhow::ensure;
use common::{TestApp, seed_backup, set_state};
use reqwest::Method;
use serde_json::Value;

#[tokio::test]
async fn the_page_says_which_backup_the_next_one_removes_and_a_plan_without_backups_refuses()
-> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("limits@example.com").await?;
    let (id, _) = customer.create_instance("limit-shop").await?;
    set_state(&app, id, "active").await?;
    let max: i32 = sqlx::query_scalar(
        "SELECT p.max_backups FROM plans p JOIN tenants t ON t.plan_id = p.id WHERE t.id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await?;
    ensure!(max >= 1, "the test plan keeps no backups");
    let mut oldest = None;
    for i in 0..max {
        let backup = seed_backup(&app, id, b"zip").await?;
        sqlx::query(
            "UPDATE backups SET created_at = now() - make_interval(days => $2) WHERE id = $1",
        )
        .bind(backup)
        .bind(30 - i)
        .execute(&app.pool)
        .await?;
        oldest.get_or_insert(backup);
    }
    let page = customer
        .client
        .get(customer.url(&format!("/instances/{id}")))
        .send()
        .await?
        .text()
        .await?;
    let oldest_date: String = sqlx::query_scalar(
        "SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM backups WHERE id = $1",
    )
    .bind(oldest)
    .fetch_one(&app.pool)
    .await?;
    ensure!(
        page.contains(&format!(
            "Your plan keeps {max} manual or uploaded backups; you have {max}."
        )) && page.contains(&format!(
            "removes the oldest, the manual backup of {oldest_date} UTC"
        )),
        "backup note missing: {page}"
    );

    sqlx::query(
        "UPDATE plans SET max_backups = 0 WHERE id = (SELECT plan_id FROM tenants WHERE id = $1)",
    )
    .bind(id)
    .execute(&app.pool)
    .await?;
    let refused = customer
        .api(
            Method::POST,
            &format!("/api/v1/instances/{id}/backups"),
            None,
        )
        .await?;
    ensure!(
        refused.status() == 422,
        "backup with no allowance: {}",
        refused.status()
    );
    let body: Value = refused.json().await?;
    ensure!(
        body["error"]["field"] == "backup"
            && body["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("keeps no manual or uploaded backups"),
        "{body}"
    );
    let queued: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM operations WHERE tenant_id = $1 AND kind = 'backup'",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await?;
    ensure!(queued == 0, "a refused backup was queued");
    Ok(())
}

#[tokio::test]
async fn a_failed_operation_shows_the_customer_text_never_the_operators_reason()
-> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("errors@example.com").await?;
    let (id, op) = customer.create_instance("error-shop").await?;
    let secret = "psql:<stdin>:12: ERROR:  permission denied; other_tenant_db canary-8812";
    sqlx::query(
        "UPDATE operations SET state = 'failed', finished_at = now(), last_error = $2,
                customer_error = 'dump.sql line 12: permission denied'
         WHERE id = $1",
    )
    .bind(op)
    .bind(secret)
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
        page.contains("dump.sql line 12: permission denied")
            && !page.contains("canary-8812")
            && !page.contains("other_tenant_db"),
        "{page}"
    );
    let api: Value = customer
        .api(
            Method::GET,
            &format!("/api/v1/instances/{id}/operations"),
            None,
        )
        .await?
        .json()
        .await?;
    let text = api.to_string();
    ensure!(
        text.contains("dump.sql line 12: permission denied") && !text.contains("canary-8812"),
        "{text}"
    );

    // A row that has only the operators' reason shows a plain sentence.
    sqlx::query("UPDATE operations SET customer_error = NULL WHERE id = $1")
        .bind(op)
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
        page.contains("our operators can see why") && !page.contains("canary-8812"),
        "{page}"
    );
    Ok(())
}
