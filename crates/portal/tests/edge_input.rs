//! Hostile input against the real binary: NUL bytes in every form, query
//! and JSON body, look-alike (IDNA-reserved) subdomains, a request body
//! trickled in a byte at a time.

mod common;

use std::time::Duration;

use anyhow::ensure;
use common::{Options, PASSWORD, TestApp, csrf_in};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A 422 naming `field`: an HTML page (`data-field`) or the API's JSON.
async fn refused(response: reqwest::Response, field: &str, what: &str) -> anyhow::Result<()> {
    let status = response.status();
    let json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = response.text().await?;
    ensure!(status == 422, "{what}: {status} {body}");
    if json {
        let body: Value = serde_json::from_str(&body)?;
        ensure!(body["error"]["field"] == field, "{what}: {body}");
    } else {
        ensure!(
            body.contains(&format!("data-field=\"{field}\"")),
            "{what}: {field} not named: {body}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn nul_bytes_in_every_input_answer_422_naming_the_field() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let nul = "bad\u{0}value";
    // Anonymous forms.
    let anonymous = TestApp::client()?;
    let page = anonymous
        .get(app.url("/signup"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = csrf_in(&page)?;
    let signup = [
        ("email", "new@example.com"),
        ("company_name", "Acme"),
        ("password", PASSWORD),
    ];
    for (field, _) in signup {
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
        form.extend(
            signup
                .iter()
                .map(|(k, v)| (*k, if *k == field { nul } else { *v })),
        );
        let response = anonymous
            .post(app.url("/signup"))
            .form(&form)
            .send()
            .await?;
        refused(response, field, "sign-up").await?;
    }
    for (path, fields) in [
        ("/login", &["email", "password"][..]),
        ("/password/forgot", &["email"][..]),
        ("/password/reset", &["token", "password"][..]),
    ] {
        for field in fields {
            let mut form: Vec<(&str, &str)> = vec![("csrf_token", csrf.as_str())];
            form.extend(
                fields
                    .iter()
                    .map(|f| (*f, if f == field { nul } else { "x" })),
            );
            let response = anonymous.post(app.url(path)).form(&form).send().await?;
            refused(response, field, path).await?;
        }
    }
    refused(
        anonymous.get(app.url("/verify?token=a%00b")).send().await?,
        "token",
        "verify",
    )
    .await?;
    // A signed-in customer's forms, queries and API bodies.
    let customer = app.customer("nul@example.com").await?;
    let (id, _) = customer.create_instance("nulshop").await?;
    let backup = common::seed_backup(&app, id, b"PK\x05\x06").await?;
    type Fields<'a> = Vec<(&'a str, &'a str)>;
    let forms: Vec<(String, Fields, &str)> = vec![
        ("/tokens".into(), vec![("name", nul)], "name"),
        (
            "/instances".into(),
            vec![("subdomain", nul), ("admin_password", PASSWORD)],
            "subdomain",
        ),
        (
            "/instances".into(),
            vec![
                ("subdomain", "nulshop2"),
                ("plan", nul),
                ("admin_password", PASSWORD),
            ],
            "plan",
        ),
        (
            "/instances".into(),
            vec![("subdomain", "nulshop3"), ("admin_password", nul)],
            "admin_password",
        ),
        (format!("/instances/{id}/plan"), vec![("plan", nul)], "plan"),
        (
            format!("/instances/{id}/delete"),
            vec![("confirm", nul)],
            "confirm",
        ),
        (
            format!("/backups/{backup}/restore"),
            vec![("confirm", nul)],
            "confirm",
        ),
    ];
    for (path, fields, field) in &forms {
        let response = customer.post_form(path, fields).await?;
        refused(response, field, path).await?;
    }
    refused(
        customer
            .client
            .get(app.url(&format!("/instances/{id}?done=%00")))
            .send()
            .await?,
        "done",
        "instance page query",
    )
    .await?;
    let api: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/api/v1/tokens".into(),
            json!({ "name": nul }),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/instances".into(),
            json!({ "subdomain": nul, "admin_password": PASSWORD }),
            "subdomain",
        ),
        (
            Method::POST,
            "/api/v1/instances".into(),
            json!({ "subdomain": "nulshop4", "plan": nul, "admin_password": PASSWORD }),
            "plan",
        ),
        (
            Method::POST,
            format!("/api/v1/instances/{id}/plan"),
            json!({ "plan": nul }),
            "plan",
        ),
        (
            Method::POST,
            format!("/api/v1/backups/{backup}/restore"),
            json!({ "confirm": nul }),
            "confirm",
        ),
    ];
    for (method, path, body, field) in api {
        let response = customer.api(method, &path, Some(body)).await?;
        refused(response, field, &path).await?;
    }
    let response = customer
        .api(
            Method::DELETE,
            &format!("/api/v1/instances/{id}?confirm=%00"),
            None,
        )
        .await?;
    refused(response, "confirm", "delete query").await?;
    // Nothing of it reached the database.
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens")
        .fetch_one(&app.pool)
        .await?;
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants")
        .fetch_one(&app.pool)
        .await?;
    ensure!(
        tokens == 0 && tenants == 1,
        "{tokens} tokens, {tenants} tenants"
    );
    Ok(())
}

#[tokio::test]
async fn idna_reserved_subdomains_are_refused_with_a_reason() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let customer = app.customer("idna@example.com").await?;
    for name in ["xn--80ak6aa92e", "xn--pple-43d", "ab--cd"] {
        let check: Value = customer
            .api(Method::GET, &format!("/api/v1/subdomains/{name}"), None)
            .await?
            .json()
            .await?;
        ensure!(
            check["available"] == false
                && check["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("third and fourth")),
            "{name}: {check}"
        );
        let created = customer
            .api(
                Method::POST,
                "/api/v1/instances",
                Some(json!({ "subdomain": name, "admin_password": PASSWORD })),
            )
            .await?;
        let status = created.status();
        let body: Value = created.json().await?;
        ensure!(
            status == 422 && body["error"]["field"] == "subdomain",
            "{name}: {status} {body}"
        );
        let page = customer
            .post_form(
                "/instances",
                &[("subdomain", name), ("admin_password", PASSWORD)],
            )
            .await?;
        ensure!(page.status() == 422, "{name} (form): {}", page.status());
        ensure!(
            page.text().await?.contains("internationalised"),
            "{name}: no reason"
        );
    }
    // A hyphen elsewhere is fine.
    customer.create_instance("a--b").await?;
    Ok(())
}

#[tokio::test]
async fn a_trickled_request_body_is_answered_408() -> anyhow::Result<()> {
    let app = TestApp::start_with(Options {
        extra_env: vec![("HTTP_REQUEST_TIMEOUT_SECS".into(), "2".into())],
        ..Options::default()
    })
    .await?;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await?;
    stream
        .write_all(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nemail=",
        )
        .await?;
    let started = std::time::Instant::now();
    let (mut read, mut write) = stream.into_split();
    let trickle = tokio::spawn(async move {
        while write.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(8), read.read(&mut answer)).await??;
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    ensure!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    ensure!(
        started.elapsed() >= Duration::from_millis(1800)
            && started.elapsed() < Duration::from_secs(6),
        "answered after {:?}",
        started.elapsed()
    );
    Ok(())
}
