//! The web edge attacked from outside, against the real binary: lockouts
//! from one address while the owner signs in from another, forwarded
//! headers from untrusted peers, security headers on every page, NUL bytes
//! in every input, look-alike subdomains, a trickled request body.

mod common;

use std::time::Duration;

use anyhow::{Context, ensure};
use common::{Customer, Options, PASSWORD, TestApp, csrf_in};
use reqwest::Method;
use saas_testkit::web::{check_headers, check_no_inline, check_page};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The sign-in attack mails in the outbox to `to`.
async fn attack_mails(app: &TestApp, to: &str) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT body_text FROM email_outbox WHERE to_address = $1 AND purpose = 'sign_in_attack'",
    )
    .bind(to)
    .fetch_all(&app.pool)
    .await?)
}

#[tokio::test]
async fn an_attacker_cannot_lock_the_owner_out_and_the_owner_is_told() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let email = "victim@example.com";
    app.customer(email).await?;
    // One attacking address: ten wrong passwords, then refused outright.
    let attacker = Customer {
        client: TestApp::client_from("127.0.0.2")?,
        base: app.base.clone(),
        email: email.to_owned(),
        csrf: String::new(),
    };
    for attempt in 1..=14 {
        let status = attacker.try_login("wrong-password-123").await?.status();
        let expected = if attempt <= 10 { 401 } else { 429 };
        ensure!(status == expected, "attempt {attempt}: {status}");
    }
    ensure!(
        attacker.try_login(PASSWORD).await?.status() == 429,
        "the right password from the attacking address was let in"
    );
    // The owner, from another address, signs in as usual.
    let owner = app.customer_from(email, "127.0.0.3").await?;
    let page = owner.client.get(app.url("/instances")).send().await?;
    ensure!(page.status() == 200, "owner: {}", page.status());
    ensure!(
        attack_mails(&app, email).await?.is_empty(),
        "ten failures are not an attack yet"
    );
    // More addresses join: twenty failures on the account tell the owner,
    // once; sign-ins are slowed but the owner still gets in.
    for ip in ["127.0.0.4", "127.0.0.5"] {
        let more = Customer {
            client: TestApp::client_from(ip)?,
            base: app.base.clone(),
            email: email.to_owned(),
            csrf: String::new(),
        };
        for _ in 0..10 {
            let status = more.try_login("wrong-password-123").await?.status();
            ensure!(status == 401, "from {ip}: {status}");
        }
    }
    let mut mails = Vec::new();
    for _ in 0..50 {
        mails = attack_mails(&app, email).await?;
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(mails.len() == 1, "attack mails: {mails:?}");
    ensure!(
        mails[0].contains("20 failed attempts") && !mails[0].contains("wrong-password"),
        "{}",
        mails[0]
    );
    let late = app.customer_from(email, "127.0.0.6").await?;
    ensure!(
        late.client
            .get(app.url("/instances"))
            .send()
            .await?
            .status()
            == 200,
        "owner after the attack"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(
        attack_mails(&app, email).await?.len() == 1,
        "the owner was mailed twice in one window"
    );
    let noticed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE action = 'customer.sign_in_attacked'",
    )
    .fetch_one(&app.pool)
    .await?;
    ensure!(noticed == 1, "{noticed} audit entries");
    Ok(())
}

#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() -> anyhow::Result<()> {
    // Without TRUSTED_PROXIES, a rotating X-Forwarded-For / X-Real-IP from
    // the attacker's own connection changes nothing: 20 failed bearer
    // tokens from 127.0.0.2, and the 21st is refused.
    let app = TestApp::start().await?;
    let attacker = TestApp::client_from("127.0.0.2")?;
    for attempt in 1..=21 {
        let spoofed = format!("198.51.100.{attempt}");
        let status = attacker
            .get(app.url("/api/v1/instances"))
            .bearer_auth(format!("osc_wrong{attempt}"))
            .header("x-forwarded-for", &spoofed)
            .header("x-real-ip", &spoofed)
            .send()
            .await?
            .status();
        let expected = if attempt <= 20 { 401 } else { 429 };
        ensure!(status == expected, "attempt {attempt}: {status}");
    }
    // Another real address is not affected.
    let other = TestApp::client_from("127.0.0.3")?
        .get(app.url("/api/v1/instances"))
        .bearer_auth("osc_wrong")
        .send()
        .await?;
    ensure!(other.status() == 401, "other address: {}", other.status());
    // A sign-in's audit entry names the peer, not the header.
    let customer = app.customer("spoof@example.com").await?;
    drop(customer);
    let mut spoofed = reqwest::header::HeaderMap::new();
    spoofed.insert("x-forwarded-for", "203.0.113.99".parse()?);
    spoofed.insert("x-real-ip", "203.0.113.99".parse()?);
    let spoofer = Customer {
        client: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .local_address("127.0.0.4".parse::<std::net::IpAddr>()?)
            .default_headers(spoofed)
            .build()?,
        base: app.base.clone(),
        email: "spoof@example.com".to_owned(),
        csrf: String::new(),
    };
    ensure!(spoofer.try_login(PASSWORD).await?.status() == 303);
    let address: Option<String> = sqlx::query_scalar(
        "SELECT host(address) FROM audit_log WHERE action = 'customer.sign_in' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await?;
    ensure!(address.as_deref() == Some("127.0.0.4"), "{address:?}");

    // With 127.0.0.1 as the trusted proxy, its X-Forwarded-For names the
    // client: two clients behind it are counted apart, and an untrusted
    // peer sending the same header is still only itself.
    let proxied = TestApp::start_with(Options {
        extra_env: vec![("TRUSTED_PROXIES".into(), "127.0.0.1/32".into())],
        ..Options::default()
    })
    .await?;
    let proxy = TestApp::client_from("127.0.0.1")?;
    let call = |client: &reqwest::Client, forwarded: &str| {
        client
            .get(proxied.url("/api/v1/instances"))
            .bearer_auth("osc_wrong")
            .header("x-forwarded-for", format!("6.6.6.6, {forwarded}"))
            .send()
    };
    for _ in 0..20 {
        ensure!(call(&proxy, "203.0.113.7").await?.status() == 401);
    }
    ensure!(call(&proxy, "203.0.113.7").await?.status() == 429);
    ensure!(
        call(&proxy, "203.0.113.8").await?.status() == 401,
        "a second client behind the proxy was throttled with the first"
    );
    let untrusted = TestApp::client_from("127.0.0.2")?;
    ensure!(
        call(&untrusted, "203.0.113.7").await?.status() == 401,
        "an untrusted peer borrowed the proxied client's address"
    );
    Ok(())
}

#[tokio::test]
async fn every_page_carries_the_security_headers() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let anonymous = TestApp::client()?;
    for path in [
        "/login",
        "/login?next=/tokens",
        "/signup",
        "/password/forgot",
        "/password/reset?token=0123",
        "/verify?token=0123",
        "/signup/done",
        "/no/such/page",
        "/instances",
        "/api/v1/plans",
        "/api/openapi.json",
        "/static/portal.css",
        "/static/portal.js",
        "/healthz",
    ] {
        let response = anonymous.get(app.url(path)).send().await?;
        check_headers(path, &response, false)?;
        check_page(path, response).await?;
    }
    let customer = app.customer("headers@example.com").await?;
    let (id, _) = customer.create_instance("headers1").await?;
    for path in [
        "/instances".to_owned(),
        "/instances/new".to_owned(),
        format!("/instances/{id}"),
        format!("/instances/{id}?done=backup"),
        "/tokens".to_owned(),
        "/api/v1/instances".to_owned(),
        format!("/api/v1/instances/{id}"),
    ] {
        let response = customer.client.get(app.url(&path)).send().await?;
        ensure!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        check_headers(&path, &response, false)?;
        check_page(&path, response).await?;
    }
    // Error answers of forms carry them too.
    let error = customer.post_form("/tokens", &[("name", "")]).await?;
    check_headers("/tokens (invalid)", &error, false)?;
    // Every template, not only the pages visited, is free of inline script.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        check_no_inline(
            &path.display().to_string(),
            &std::fs::read_to_string(&path)?,
        )?;
    }
    Ok(())
}

/// The `name=value` of the `Set-Cookie` for a cookie named `name`, and the
/// whole header.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| (v.split(';').next().unwrap_or("").to_owned(), v.to_owned()))
}

#[tokio::test]
async fn with_https_cookies_are_host_only_and_hsts_is_sent() -> anyhow::Result<()> {
    let app = TestApp::start_with(Options {
        extra_env: vec![("PUBLIC_SCHEME".into(), "https".into())],
        ..Options::default()
    })
    .await?;
    // Secure cookies are not sent back over the test's plain http, so the
    // client here carries them by hand, as a browser over https would.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let page = client.get(app.url("/signup")).send().await?;
    let (pair, _) = set_cookie(&page, "__Host-saas_portal_csrf").context("no CSRF cookie")?;
    let csrf = csrf_in(&page.text().await?)?;
    let signed_up = client
        .post(app.url("/signup"))
        .header("cookie", &pair)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "https@example.com"),
            ("company_name", "Acme"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    ensure!(signed_up.status() == 303, "sign-up: {}", signed_up.status());
    let page = client.get(app.url("/login")).send().await?;
    check_headers("/login", &page, true)?;
    let (csrf_pair, csrf_header) =
        set_cookie(&page, "__Host-saas_portal_csrf").context("no __Host- CSRF cookie")?;
    ensure!(
        csrf_header.contains("Secure")
            && csrf_header.contains("Path=/")
            && !csrf_header.contains("Domain"),
        "{csrf_header}"
    );
    let csrf = csrf_in(&page.text().await?)?;
    let signed_in = client
        .post(app.url("/login"))
        .header("cookie", &csrf_pair)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("email", "https@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    ensure!(signed_in.status() == 303, "login: {}", signed_in.status());
    check_headers("/login (POST)", &signed_in, true)?;
    let (session_pair, session_header) =
        set_cookie(&signed_in, "__Host-saas_portal_session").context("no __Host- session")?;
    ensure!(
        session_header.contains("Secure")
            && session_header.contains("HttpOnly")
            && session_header.contains("Path=/")
            && !session_header.contains("Domain"),
        "{session_header}"
    );
    let page = client
        .get(app.url("/instances"))
        .header("cookie", &session_pair)
        .send()
        .await?;
    ensure!(page.status() == 200, "instances: {}", page.status());
    check_headers("/instances", &page, true)?;
    // A cookie without the prefix (as a tenant's site could plant for the
    // parent domain) is not the portal's.
    let planted = client
        .get(app.url("/instances"))
        .header("cookie", session_pair.replace("__Host-", ""))
        .send()
        .await?;
    ensure!(
        planted.status() == 303,
        "planted cookie: {}",
        planted.status()
    );
    Ok(())
}

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
async fn signing_in_again_ends_the_session_it_replaces() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let mut customer = app.customer("again@example.com").await?;
    let session = |response: &reqwest::Response| {
        set_cookie(response, "saas_portal_session").map(|(pair, _)| pair)
    };
    let first = customer.try_login(PASSWORD).await?;
    let first = session(&first).context("no session cookie")?;
    customer.login(PASSWORD).await?;
    let bare = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let old = bare
        .get(app.url("/instances"))
        .header("cookie", &first)
        .send()
        .await?;
    ensure!(
        old.status() == 303,
        "replaced session still works: {}",
        old.status()
    );
    let current = customer.client.get(app.url("/instances")).send().await?;
    ensure!(
        current.status() == 200,
        "current session: {}",
        current.status()
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
