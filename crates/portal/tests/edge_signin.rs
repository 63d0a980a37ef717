//! Sign-in attacked from outside, against the real binary: an attacker
//! locking the owner out from one address while the owner signs in from
//! another, addresses chosen with forwarded headers, sessions replaced by
//! signing in again.

mod common;

use std::time::Duration;

use anyhow::{Context, ensure};
use common::{Customer, Options, PASSWORD, TestApp, set_cookie};

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
