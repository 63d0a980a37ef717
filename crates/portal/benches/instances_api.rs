//! The portal's instance list, `GET /api/v1/instances` with a bearer token,
//! for a customer with 20 instances, under wrk at 64 connections, idle and
//! with one busy loop per core beside it, next to a minimal axum handler
//! answering a body of the same size, measured in the same run. Writes the
//! `portal-api` section of `bench/RESULTS.md`.
//!
//! `cargo bench -p portal --bench instances_api` (needs wrk).

#[path = "../tests/common/mod.rs"]
mod common;

use anyhow::{Context, ensure};
use reqwest::Method;
use saas_testkit::bench::{FloorComparison, compare_with_floor};
use serde_json::json;

const INSTANCES: i32 = 20;

async fn run() -> anyhow::Result<()> {
    let app = common::TestApp::start_with(common::Options {
        extra_env: vec![("LOG_LEVEL".into(), "warn".into())],
        ..common::Options::default()
    })
    .await?;
    let customer = app.customer("bench@example.com").await?;
    sqlx::query("UPDATE plans SET max_instances = 1000")
        .execute(&app.pool)
        .await?;
    sqlx::query(
        "INSERT INTO tenants (id, subdomain, customer_id, plan_id, state, db_name)
         SELECT gen_random_uuid(), 'shop-' || n, c.id, $2, 'active', 't_shop_' || n
         FROM generate_series(1, $1) AS n, customers c WHERE c.email = 'bench@example.com'",
    )
    .bind(INSTANCES)
    .bind(app.small_plan)
    .execute(&app.pool)
    .await?;
    let created = customer
        .api(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": "bench" })),
        )
        .await?;
    ensure!(created.status() == 201, "token: {}", created.status());
    let token = created.json::<serde_json::Value>().await?["token"]["secret"]
        .as_str()
        .context("no token in the answer")?
        .to_owned();
    let url = app.url("/api/v1/instances");
    let listed: serde_json::Value = reqwest::Client::new()
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let count = listed["instances"].as_array().map_or(0, Vec::len);
    ensure!(
        count == usize::try_from(INSTANCES)?,
        "the list holds {count} instances, not {INSTANCES}"
    );
    let compared =
        compare_with_floor(&url, &[format!("Authorization: Bearer {token}")], 64, 10).await?;
    eprintln!("{compared:?}");
    let body = format!(
        "## portal: instances API\n\n\
         `GET /api/v1/instances` with a bearer token for a customer with {INSTANCES} instances \
         ({} bytes of JSON), `wrk -t2 -c64 -d10s`, next to a minimal axum handler answering the same \
         number of bytes from memory, measured in the same run; \"loaded\": {} busy-loop processes \
         (one per core) beside both. Every answer was 2xx. Release build, this 2-core machine, \
         PostgreSQL and Redis local.\n\n{}{}\n\
         Run: `cargo bench -p portal --bench instances_api` (measured {}).\n",
        compared.body_bytes,
        compared.busy_processes,
        FloorComparison::HEADER,
        compared.row("`GET /api/v1/instances`"),
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    let path = saas_testkit::write_bench_section("portal-api", &body)?;
    eprintln!("wrote {}", path.display());
    saas_testkit::clear_redis_prefix(&app.redis_prefix).await?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    saas_testkit::bench::main(run)
}
