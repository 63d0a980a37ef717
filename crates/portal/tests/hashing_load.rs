//! 128 concurrent hostile clients, each from its own address, against the
//! real portal binary: password resets with bogus links, wrong passwords
//! for a real and for unknown accounts, sign-ups. Unbounded, Argon2's
//! 19 MiB per hash took a portal to 5.5-6.8 GiB; here its peak resident
//! memory (VmHWM, from /proc) stays under 256 MB, nothing answers 500, the
//! overflow is told to come back (503 + Retry-After), and a customer can
//! still sign in afterwards.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use common::{PASSWORD, TestApp, csrf_in};

const CLIENTS: usize = 128;
const LOAD: Duration = Duration::from_secs(12);
const LIMIT_BYTES: u64 = 256 * 1024 * 1024;

/// A `/proc/<pid>/status` field in bytes (`VmRSS`, `VmHWM`).
fn memory(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .context("no such field")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

/// A request of the hostile mix: its name, path, form fields (besides the
/// CSRF token) and the statuses it may get.
type Hostile<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a [u16]);

/// One hostile client's loop; returns the statuses it got, by request.
async fn attack(
    base: String,
    ip: String,
    victim: &'static str,
    until: Instant,
) -> anyhow::Result<BTreeMap<String, u32>> {
    let client = TestApp::client_from(&ip)?;
    let page = client
        .get(format!("{base}/login"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = csrf_in(&page)?;
    let mut seen = BTreeMap::new();
    let mut round = 0u32;
    while Instant::now() < until {
        round += 1;
        let bogus = saas_core::auth::random_token(32);
        let stranger = format!("nobody-{}-{round}@example.com", ip.replace('.', "-"));
        let requests: [Hostile; 4] = [
            (
                "reset",
                "/password/reset",
                vec![("token", bogus.as_str()), ("password", PASSWORD)],
                &[410, 429, 503],
            ),
            (
                "login-victim",
                "/login",
                vec![("email", victim), ("password", "wrong-password-123")],
                &[401, 429, 503],
            ),
            (
                "login-unknown",
                "/login",
                vec![
                    ("email", stranger.as_str()),
                    ("password", "wrong-password-123"),
                ],
                &[401, 429, 503],
            ),
            (
                "signup",
                "/signup",
                vec![
                    ("email", stranger.as_str()),
                    ("company_name", "Load"),
                    ("password", PASSWORD),
                ],
                &[303, 429, 503],
            ),
        ];
        for (name, path, fields, allowed) in requests {
            let mut form = vec![("csrf_token", csrf.as_str())];
            form.extend(fields);
            let response = client
                .post(format!("{base}{path}"))
                .form(&form)
                .send()
                .await?;
            let status = response.status().as_u16();
            ensure!(allowed.contains(&status), "{name} from {ip}: {status}");
            if status == 503 || status == 429 {
                ensure!(
                    response.headers().contains_key("retry-after"),
                    "{name}: {status} without Retry-After"
                );
            }
            *seen.entry(format!("{name} {status}")).or_default() += 1;
        }
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_concurrent_requests_keep_the_portal_under_256_mb() -> anyhow::Result<()> {
    let app = TestApp::start().await?;
    const VICTIM: &str = "load-victim@example.com";
    app.customer(VICTIM).await?;
    app.customer("bystander@example.com").await?;
    let pid = app.process.pid();
    let baseline = memory(pid, "VmRSS")?;
    let until = Instant::now() + LOAD;
    let sampler = tokio::spawn(async move {
        let mut peak = 0u64;
        while Instant::now() < until + Duration::from_secs(2) {
            if let Ok(rss) = memory(pid, "VmRSS") {
                peak = peak.max(rss);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peak
    });
    let clients: Vec<_> = (1..=CLIENTS)
        .map(|i| {
            tokio::spawn(attack(
                app.base.clone(),
                format!("127.0.1.{i}"),
                VICTIM,
                until,
            ))
        })
        .collect();
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for client in clients {
        for (key, count) in client.await?? {
            *seen.entry(key).or_default() += count;
        }
    }
    let sampled = sampler.await?;
    let peak = memory(pid, "VmHWM")?;
    let mb = |bytes: u64| bytes as f64 / 1024.0 / 1024.0;
    eprintln!(
        "statuses: {seen:?}; RSS {:.0} MB before, peak {:.0} MB (sampled {:.0} MB)",
        mb(baseline),
        mb(peak),
        mb(sampled)
    );
    ensure!(
        peak < LIMIT_BYTES,
        "peak resident memory {:.0} MB under {CLIENTS} hostile clients",
        mb(peak)
    );
    let hashed = seen.get("login-victim 401").copied().unwrap_or(0)
        + seen.get("login-unknown 401").copied().unwrap_or(0)
        + seen.get("signup 303").copied().unwrap_or(0);
    ensure!(
        hashed > 50,
        "too few requests got as far as a hash: {seen:?}"
    );
    // A customer nobody attacked signs in once the storm is over.
    let started = Instant::now();
    let bystander = app
        .customer_from("bystander@example.com", "127.0.2.1")
        .await?;
    ensure!(
        bystander
            .client
            .get(app.url("/instances"))
            .send()
            .await?
            .status()
            == 200,
        "the bystander's session"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(10),
        "signing in after the load took {:?}",
        started.elapsed()
    );
    Ok(())
}
