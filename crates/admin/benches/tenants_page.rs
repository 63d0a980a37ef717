//! Tenants page and API under load, with 100,000 tenants seeded: latency of
//! the page (first page, a page deep into the cursor, a search) p50/p99
//! over sequential requests, and `GET /api/v1/tenants?limit=50` throughput
//! under wrk at 64 connections, idle and loaded, next to a minimal axum
//! handler measured in the same run. Writes the "admin" section of
//! bench/RESULTS.md. Run with `cargo bench -p admin`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use reqwest::cookie::Jar;
use saas_testkit::bench::compare_with_floor;
use saas_testkit::contract::Binary;
use saas_testkit::{TestDb, free_port, redis_prefix};

const TENANTS: i64 = 100_000;
const SAMPLES: usize = 300;
const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "plum-orbit-cedar-42";

fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(text[from..from + len].to_owned())
}

async fn seed(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO servers (id, name, public_url, internal_url, pg_url, filestore_root, capacity)
         SELECT gen_random_uuid(), 'odoo-' || i, 'https://odoo' || i, 'http://odoo' || i, 'postgres://x/y', '/f', 100000
         FROM generate_series(1, 2) i",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO plans (id, code, name, max_users, max_storage_mb, max_backups, template)
         SELECT gen_random_uuid(), 'plan-' || i, 'Plan ' || i, 5 * i, 1024 * i, 7, 'basic'
         FROM generate_series(1, 3) i",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO customers (id, email, company_name, password_hash, created_at)
         SELECT gen_random_uuid(), 'customer' || i || '@example.com', 'Company ' || i, 'x', now() - i * interval '1 minute'
         FROM generate_series(1, $1) i",
    )
    .bind(TENANTS / 10)
    .execute(pool)
    .await?;
    sqlx::query(
        "WITH c AS (SELECT id, row_number() OVER (ORDER BY email) AS n FROM customers),
              p AS (SELECT id, row_number() OVER (ORDER BY code) AS n FROM plans),
              s AS (SELECT id, row_number() OVER (ORDER BY name) AS n FROM servers)
         INSERT INTO tenants (id, subdomain, customer_id, plan_id, server_id, state, db_name, created_at)
         SELECT gen_random_uuid(), 'shop-' || i, c.id, p.id, s.id,
                (ARRAY['active','active','active','suspended','failed'])[1 + i % 5],
                't_shop_' || i, now() - i * interval '1 second'
         FROM generate_series(1, $1) i
         JOIN c ON c.n = 1 + i % ($1 / 10)
         JOIN p ON p.n = 1 + i % 3
         JOIN s ON s.n = 1 + i % 2",
    )
    .bind(TENANTS)
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or_default()
}

async fn latency(client: &reqwest::Client, url: &str) -> anyhow::Result<(Duration, Duration)> {
    for _ in 0..20 {
        client.get(url).send().await?.bytes().await?;
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let response = client.get(url).send().await?;
        ensure!(response.status() == 200, "{url}: {}", response.status());
        response.bytes().await?;
        samples.push(started.elapsed());
    }
    samples.sort();
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let db = TestDb::new("adminbench").await?;
    let bin = Binary::new(env!("CARGO_BIN_EXE_admin"), "ADMIN_PORT");
    let mut env = bin.env(&db, free_port()?);
    let prefix = redis_prefix();
    env.insert("REDIS_KEY_PREFIX".into(), prefix.clone());
    env.insert("ADMIN_BOOTSTRAP_EMAIL".into(), EMAIL.into());
    env.insert("ADMIN_BOOTSTRAP_PASSWORD".into(), PASSWORD.into());
    env.insert("PUBLIC_SCHEME".into(), "http".into());
    env.insert("LOG_LEVEL".into(), "warn".into());
    env.insert("DB_MAX_CONNECTIONS".into(), "16".into());
    let (_process, base) = bin.start(&env).await?;
    let pool = db.pool().await?;
    let seeding = Instant::now();
    seed(&pool).await?;
    eprintln!("seeded {TENANTS} tenants in {:?}", seeding.elapsed());

    let client = reqwest::Client::builder()
        .cookie_provider(Arc::new(Jar::default()))
        .build()?;
    let login = client
        .get(format!("{base}/login"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = between(&login, "name=\"_csrf\" value=\"", "\"").context("no csrf")?;
    client
        .post(format!("{base}/login"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("email", EMAIL),
            ("password", PASSWORD),
        ])
        .send()
        .await?;
    let tokens = client
        .get(format!("{base}/tokens"))
        .send()
        .await?
        .text()
        .await?;
    let csrf = between(&tokens, "name=\"_csrf\" value=\"", "\"").context("not signed in")?;
    let created = client
        .post(format!("{base}/tokens"))
        .form(&[("_csrf", csrf.as_str()), ("name", "bench")])
        .send()
        .await?
        .text()
        .await?;
    let token = between(&created, "id=\"new-token\">", "<").context("no token")?;

    // A cursor halfway through the newest-first order.
    let (at, id): (chrono::DateTime<chrono::Utc>, uuid::Uuid) = sqlx::query_as(
        "SELECT created_at, id FROM tenants ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
    )
    .bind(TENANTS / 2)
    .fetch_one(&pool)
    .await?;
    let cursor = hex::encode(format!(
        "{}|{id}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    ));
    let cases = [
        ("first page", format!("{base}/tenants")),
        (
            "deep cursor page (row 50,000)",
            format!("{base}/tenants?cursor={cursor}"),
        ),
        ("search `shop-4242`", format!("{base}/tenants?q=shop-4242")),
        (
            "broad search `shop-1` (11,111 matches)",
            format!("{base}/tenants?q=shop-1"),
        ),
        (
            "search by customer email",
            format!("{base}/tenants?q=customer77%40example.com"),
        ),
        (
            "filter state=suspended, sorted by name",
            format!("{base}/tenants?state=suspended&sort=name"),
        ),
    ];
    let mut rows = String::new();
    for (name, url) in &cases {
        let (p50, p99) = latency(&client, url).await?;
        eprintln!("{name}: p50 {} p99 {}", ms(p50), ms(p99));
        rows.push_str(&format!("| {name} | {} | {} |\n", ms(p50), ms(p99)));
    }
    let api = format!("{base}/api/v1/tenants?limit=50");
    let compared =
        compare_with_floor(&api, &[format!("Authorization: Bearer {token}")], 64, 10).await?;
    eprintln!("{compared:?}");
    let rps = compared.idle.requests_per_sec;
    let body = format!(
        "## admin: tenants page and API with {TENANTS} tenants\n\n\
         `cargo bench -p admin` (release build, this 2-core machine; PostgreSQL and Redis local).\n\n\
         Tenants page (HTML, signed-in owner), {SAMPLES} sequential requests each, measured at the \
         client over loopback (so it includes the HTTP round trip). Target p99 < 20 ms.\n\n\
         | page | p50 | p99 |\n|---|---|---|\n{rows}\n\
         `GET /api/v1/tenants?limit=50` with a bearer token, `wrk -t2 -c64 -d10s`: \
         **{rps:.0} requests/s** idle (target ≥ 5,000 requests/s), next to a minimal axum handler \
         answering the same {} bytes of JSON from memory, measured in the same run; \
         \"loaded\": {} busy-loop processes (one per core) beside both. Every answer was 2xx.\n\n\
         {}{}",
        compared.body_bytes,
        compared.busy_processes,
        saas_testkit::bench::FloorComparison::HEADER,
        compared.row("`GET /api/v1/tenants?limit=50`"),
    );
    let path = saas_testkit::write_bench_section("admin", &body)?;
    eprintln!("wrote {}", path.display());
    saas_testkit::clear_redis_prefix(&prefix).await?;
    Ok(())
}
