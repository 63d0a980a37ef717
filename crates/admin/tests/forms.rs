//! Malformed forms and query strings on the web pages: admin's own error
//! page naming the field, never axum's plain-text rejection, never a 500.

mod common;

use anyhow::ensure;
use common::TestApp;
use reqwest::header::CONTENT_TYPE;

/// Expects a 4xx HTML error page whose message names `field`.
async fn expect_page(what: &str, response: reqwest::Response, field: &str) -> anyhow::Result<()> {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = response.text().await?;
    let short: String = body.chars().take(160).collect();
    ensure!((400..500).contains(&status), "{what}: {status} {short}");
    ensure!(
        content_type.starts_with("text/html"),
        "{what}: {status} {content_type}: {short}"
    );
    ensure!(
        body.contains(&format!("<h1>Error {status}</h1>")),
        "{what}: not the error page: {short}"
    );
    let message = common::between(&body, "role=\"alert\">", "</p>").unwrap_or_default();
    ensure!(
        message.contains(field),
        "{what}: message does not name {field}: {message}"
    );
    Ok(())
}

#[tokio::test]
async fn malformed_forms_and_queries_get_the_error_page_naming_the_field() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let owner = app.owner().await?;
    let csrf = owner.csrf("/plans").await?;
    let mut failures = Vec::new();

    // Query strings of the listings.
    for (path, field) in [
        ("/tenants?limit=abc", "limit"),
        ("/tenants?limit=99999999999999999999999", "limit"),
        ("/tenants?cursor=%FF%FE", "cursor"),
        ("/tenants?state=%00", "state"),
        ("/tenants?plan=not-a-uuid", "plan"),
        ("/tenants?sort=sideways", "sort"),
        ("/tenants?q=a%00b", "q"),
        ("/customers?disabled=maybe", "disabled"),
        ("/operations?kind=%E2%80", "kind"),
        ("/operations?tenant=x", "tenant"),
        ("/audit?since=yesterday", "since"),
        ("/audit.csv?until=2026-13-45", "until"),
    ] {
        if let Err(err) = expect_page(&format!("GET {path}"), owner.get(path).await?, field).await {
            failures.push(err.to_string());
        }
    }

    // Form bodies: wrong types, broken encoding, invalid UTF-8, raw bytes.
    let post = |path: &str, body: Vec<u8>| {
        owner
            .client
            .post(owner.url(path))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let form = |rest: &str| format!("_csrf={csrf}&{rest}").into_bytes();
    for (path, body, field) in [
        ("/plans", form("code=p1&name=P&max_users=lots"), "max_users"),
        (
            "/plans",
            form("code=p1&name=P&max_users=%FF%FE"),
            "max_users",
        ),
        (
            "/plans",
            form("code=p1&name=P&price_cents=1.5"),
            "price_cents",
        ),
        ("/servers", form("name=s&capacity=%%%"), "capacity"),
        ("/customers", form("company_name=C&email=%C3%28"), "email"),
        ("/operators", form("email=a%40example.com&role=%FF"), "role"),
        // Invalid UTF-8 is read as U+FFFD, which no field accepts.
        (
            "/customers",
            [
                &form("company_name=C&email=")[..],
                b"\xff\xfe%40example.com",
            ]
            .concat(),
            "email",
        ),
        // A form that is not urlencoded at all: no CSRF token in it.
        ("/plans", b"{\"code\": \"p1\"}".to_vec(), "form"),
    ] {
        let what = format!("POST {path} {}", String::from_utf8_lossy(&body));
        if let Err(err) = expect_page(&what, post(path, body).await?, field).await {
            failures.push(err.to_string());
        }
    }

    // Path segments that are not valid UTF-8.
    let tenant = uuid::Uuid::new_v4();
    expect_page(
        "GET backup with a broken path",
        owner.get(&format!("/tenants/{tenant}/backups/%FF")).await?,
        "backup",
    )
    .await
    .map_err(|e| failures.push(e.to_string()))
    .ok();
    expect_page(
        "POST action with a broken path",
        post("/tenants/%FF/actions/suspend", form("confirm=on")).await?,
        "id",
    )
    .await
    .map_err(|e| failures.push(e.to_string()))
    .ok();
    expect_page(
        "POST an unknown action",
        post(
            &format!("/tenants/{tenant}/actions/%FF"),
            form("confirm=on&reason=x"),
        )
        .await?,
        "action",
    )
    .await
    .map_err(|e| failures.push(e.to_string()))
    .ok();

    // The API answers the same path in JSON, naming the segment.
    let token = app.token(&owner).await?;
    let (status, answer) = app
        .api(
            &token,
            "GET",
            &format!("/api/v1/tenants/{tenant}/backups/%FF"),
            None,
        )
        .await?;
    if status != 404 || answer["error"]["field"] != "backup" {
        failures.push(format!("API backup with a broken path: {status} {answer}"));
    }

    // The login form, before any session.
    let anonymous = app.browser();
    let response = anonymous
        .client
        .post(anonymous.url("/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(vec![b'a'; 3 * 1024 * 1024])
        .send()
        .await?;
    if let Err(err) = expect_page("POST /login with a huge body", response, "body").await {
        failures.push(err.to_string());
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
