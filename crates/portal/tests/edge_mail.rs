//! Issue 11, item 6: the portal is no spam carrier. Against the real binary
//! and a real SMTP server (aiosmtpd): nothing a customer typed reaches an
//! unconfirmed address, each address gets a bounded number of messages an
//! hour (the rest dropped and counted, concurrent sign-ups included), and
//! mail leaves from the outbox in the background, so a stalled SMTP server
//! never holds a request.

mod common;

use std::time::{Duration, Instant};

use anyhow::ensure;
use common::{Options, PASSWORD, TestApp, signup};
use saas_testkit::python::SmtpSink;

/// What a spammer would put into the company name (line breaks are refused
/// outright, so one long line of it).
const SPAM: &str = "CHEAP PILLS http://spam.example/buy - Call +1 555 0100 now";

async fn bodies_to(app: &TestApp, to: &str) -> anyhow::Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT purpose, subject || E'\\n' || body_text FROM email_outbox
         WHERE lower(to_address) = lower($1) ORDER BY created_at",
    )
    .bind(to)
    .fetch_all(&app.pool)
    .await?)
}

fn with_env(pairs: &[(&str, String)]) -> Options {
    Options {
        extra_env: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
        ..Options::default()
    }
}

#[tokio::test]
async fn no_customer_text_reaches_an_unconfirmed_address() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    let client = TestApp::client()?;
    let victim = "victim@example.com";
    let first = signup(&client, &app, victim, SPAM, PASSWORD).await?;
    ensure!(first.status() == 303, "sign-up: {}", first.status());
    // Again, the address now taken: the owner's notice carries no text either.
    let again = signup(&client, &app, victim, SPAM, PASSWORD).await?;
    ensure!(again.status() == 303, "second sign-up: {}", again.status());
    let mails = bodies_to(&app, victim).await?;
    let purposes: Vec<&str> = mails.iter().map(|(p, _)| p.as_str()).collect();
    ensure!(
        purposes == ["verify_email", "sign_up_existing"],
        "{purposes:?}"
    );
    for (purpose, text) in &mails {
        for needle in ["PILLS", "spam.example", "555 0100"] {
            ensure!(
                !text.contains(needle),
                "{purpose} mail carries the company name: {text}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn each_address_gets_a_bounded_number_of_mails_and_the_rest_is_dropped_and_counted()
-> anyhow::Result<()> {
    let app =
        TestApp::start_with(with_env(&[("MAIL_PER_RECIPIENT_PER_HOUR", "3".to_owned())])).await?;
    let victim = "flooded@example.com";
    let client = TestApp::client()?;
    ensure!(
        signup(&client, &app, victim, "Acme", PASSWORD)
            .await?
            .status()
            == 303
    );
    // Twelve sign-ups with the taken address at once, each from its own
    // address (so the per-address sign-up throttle is no help), all
    // answered like any sign-up.
    let attempts = (0..12).map(|i| {
        let app = &app;
        async move {
            let client = TestApp::client_from(&format!("127.0.0.{}", 10 + i))?;
            // Twelve password hashes at once can fill the hashing gate on a
            // busy machine: a 503 (nothing stored) is retried, as a client
            // would after Retry-After.
            let mut response = signup(&client, app, victim, "Acme", PASSWORD).await?;
            for _ in 0..10 {
                if response.status() != 503 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                response = signup(&client, app, victim, "Acme", PASSWORD).await?;
            }
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            anyhow::Ok((status, location))
        }
    });
    for answer in futures::future::try_join_all(attempts).await? {
        ensure!(
            answer == (303, Some("/signup/done".to_owned())),
            "a sign-up past the limit answered {answer:?}"
        );
    }
    let mails = bodies_to(&app, victim).await?;
    ensure!(
        mails.len() == 3,
        "{} mails to one address: {mails:?}",
        mails.len()
    );
    // Another address is not affected.
    ensure!(
        signup(&client, &app, "other@example.com", "Acme", PASSWORD)
            .await?
            .status()
            == 303
    );
    ensure!(bodies_to(&app, "other@example.com").await?.len() == 1);
    let metrics = reqwest::get(format!("{}/metrics", app.metrics))
        .await?
        .text()
        .await?;
    let dropped = r#"email_dropped_total{purpose="sign_up_existing"} 10"#;
    ensure!(metrics.contains(dropped), "no {dropped} in:\n{metrics}");
    Ok(())
}

#[tokio::test]
async fn mail_is_delivered_from_the_outbox_by_the_background_sender() -> anyhow::Result<()> {
    let smtp = SmtpSink::start().await?;
    let app = TestApp::start_with(with_env(&[("SMTP_URL", smtp.url())])).await?;
    let client = TestApp::client()?;
    let to = "delivered@example.com";
    ensure!(signup(&client, &app, to, "Acme", PASSWORD).await?.status() == 303);
    let deadline = Instant::now() + Duration::from_secs(20);
    let message = loop {
        if let Some(message) = smtp.messages()?.into_iter().find(|m| m.contains(to)) {
            break message;
        }
        ensure!(
            Instant::now() < deadline,
            "nothing delivered; SMTP log:\n{}",
            smtp.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ensure!(message.contains("/verify?token="), "{message}");
    // The row records the delivery; it is not sent twice.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sent: Option<bool> = sqlx::query_scalar(
            "SELECT sent_at IS NOT NULL FROM email_outbox WHERE to_address = $1",
        )
        .bind(to)
        .fetch_optional(&app.pool)
        .await?;
        if sent == Some(true) {
            break;
        }
        ensure!(Instant::now() < deadline, "outbox row not marked sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let copies = smtp.messages()?.iter().filter(|m| m.contains(to)).count();
    ensure!(copies == 1, "{copies} copies delivered");
    Ok(())
}

#[tokio::test]
async fn a_stalled_smtp_server_never_holds_a_request() -> anyhow::Result<()> {
    // An SMTP server that accepts connections and never says a word.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = stalled.local_addr()?.port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = stalled.accept().await {
            sockets.push(socket);
        }
    });
    let app = TestApp::start_with(with_env(&[(
        "SMTP_URL",
        format!("smtp://127.0.0.1:{port}"),
    )]))
    .await?;
    let client = TestApp::client()?;
    ensure!(
        signup(&client, &app, "warm@example.com", "Acme", PASSWORD)
            .await?
            .status()
            == 303
    );
    for email in ["new@example.com", "warm@example.com"] {
        let started = Instant::now();
        let response = signup(&client, &app, email, "Acme", PASSWORD).await?;
        let took = started.elapsed();
        ensure!(response.status() == 303, "{email}: {}", response.status());
        // The SMTP timeout is 15 s: a request that waited for it would show.
        ensure!(
            took < Duration::from_secs(5),
            "{email}: sign-up took {took:?}"
        );
    }
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM email_outbox WHERE sent_at IS NULL")
        .fetch_one(&app.pool)
        .await?;
    ensure!(queued == 3, "{queued} messages waiting in the outbox");
    held.abort();
    Ok(())
}
