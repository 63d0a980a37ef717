//! From a customer's "create" (POST /api/v1/instances) to the instance
//! active as the API reports it, and on to the first web-client page fully
//! loaded (login page and its bundles, sign-in, `/odoo` and its bundles),
//! 20 instances one after another, with the real worker and the Odoo 18
//! fixture template (its asset bundles at their real sizes, served from each
//! tenant's attachments and filestore as Odoo 18 serves them:
//! `saas_testkit::odoo::web_client`); next to the raw
//! `CREATE DATABASE ... TEMPLATE` time measured in the same run.
//! Writes the `portal` section of `bench/RESULTS.md`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use reqwest::Method;
use saas_testkit::odoo::OdooWorld;
use saas_testkit::real_odoo::TenantBrowser;
use serde_json::{Value, json};
use sqlx::{Connection as _, Executor as _};

const RUNS: usize = 20;
/// What the create request must answer within (issue 12).
const TARGET: Duration = Duration::from_millis(100);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    format!(
        "{} | {} | {} | {}",
        ms(percentile(samples, 50.0)),
        ms(percentile(samples, 99.0)),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    )
}

async fn raw_clone(template: &str, name: &str) -> anyhow::Result<Duration> {
    let mut admin = sqlx::PgConnection::connect(&saas_testkit::admin_database_url()).await?;
    let started = Instant::now();
    admin
        .execute(format!(r#"CREATE DATABASE "{name}" TEMPLATE "tpl_{template}""#).as_str())
        .await?;
    let elapsed = started.elapsed();
    admin
        .execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str())
        .await?;
    Ok(elapsed)
}

/// `/proc/loadavg`'s 1-minute figure: how quiet the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

async fn run() -> anyhow::Result<()> {
    let load_before = load_average();
    let world = OdooWorld::with_real_bundles().await?;
    let odoo = url::Url::parse(&world.odoo_url)?;
    let app = common::TestApp::start_with(common::platform::options(&world)).await?;
    let _worker = common::platform::start_worker(&app, &world).await?;
    sqlx::query("UPDATE plans SET max_instances = 1000")
        .execute(&app.pool)
        .await?;
    let email = format!("bench-{}@example.com", world.suffix);
    let customer = app.customer(&email).await?;
    let (mut clone, mut request, mut to_active, mut visit, mut to_web_client) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bundles = (0, 0);
    for i in 0..RUNS {
        clone.push(raw_clone(&world.template, &format!("raw_{i}_{}", world.suffix)).await?);
        let subdomain = format!("b{i}-{}", world.suffix);
        let started = Instant::now();
        let response = customer
            .api(
                Method::POST,
                "/api/v1/instances",
                Some(json!({ "subdomain": subdomain, "admin_password": common::PASSWORD })),
            )
            .await?;
        request.push(started.elapsed());
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(status == 202, "create: {status} {body}");
        let id = body["instance"]["id"].as_str().context("no id")?.to_owned();
        loop {
            let now: Value = customer
                .api(Method::GET, &format!("/api/v1/instances/{id}"), None)
                .await?
                .json()
                .await?;
            match now["instance"]["state"].as_str() {
                Some("active") => break,
                Some("failed") => anyhow::bail!("instance {i} failed: {now}"),
                _ if started.elapsed() > Duration::from_secs(120) => {
                    anyhow::bail!("instance {i} not active after 120 s: {now}")
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        to_active.push(started.elapsed());
        let mut browser = TenantBrowser::new(&odoo, &format!("{subdomain}.saas.test"))?;
        let first = browser
            .first_visit(&subdomain, &email, common::PASSWORD)
            .await?;
        first.ensure_complete()?;
        to_web_client.push(started.elapsed());
        visit.push(first.took);
        bundles = (
            first.login_page.bundles.len() + first.web_client.bundles.len(),
            first.login_page.bundle_bytes() + first.web_client.bundle_bytes(),
        );
    }
    // Every tenant got the template's bundles: none was compiled on a visit.
    ensure!(
        world.compiled_bundles() == 0,
        "{} bundles were compiled on first visits",
        world.compiled_bundles()
    );
    request.sort();
    let (p50, p99) = (percentile(&request, 50.0), percentile(&request, 99.0));
    let verdict = if p99 < TARGET {
        format!("met: p50 {p50:.0?} and p99 {p99:.0?} are under {TARGET:?}")
    } else if p50 < TARGET {
        format!("partly met: p50 {p50:.0?} is under {TARGET:?}, p99 {p99:.0?} is not")
    } else {
        format!("NOT met: p50 {p50:.0?}, p99 {p99:.0?} (target {TARGET:?})")
    };
    let body = format!(
        "## Portal: customer \"create\" to instance active\n\n\
         {RUNS} instances created one after another through `POST /api/v1/instances` (session cookie),\n\
         each polled with `GET /api/v1/instances/{{id}}` every 20 ms until `active`; the real worker\n\
         (one process, default concurrency) clones the Odoo 18 fixture template, copies its filestore,\n\
         configures the database and probes a local server answering like Odoo. The raw clone is\n\
         `CREATE DATABASE ... TEMPLATE tpl_<fixture>` on the same PostgreSQL, measured before each create.\n\
         The create request validates, seals the Odoo admin password (XChaCha20-Poly1305) with the\n\
         provision operation and hashes nothing; the worker hashes it (pbkdf2-sha512, 600,000 rounds)\n\
         on a blocking thread while the template clones, so that cost is in \"create to active\".\n\
         *first visit*: then, as the customer's browser, `/web/login` and its bundles, sign-in\n\
         (`/web/session/authenticate`, the fixture checks the pbkdf2-sha512 hash the worker wrote,\n\
         600,000 rounds, as Odoo does), `/odoo` and its bundles, 6 at a time\n\
         (`saas_testkit::real_odoo::TenantBrowser`, the client the real-Odoo benchmark uses). The\n\
         fixture serves each page and its {bundles_n} bundles ({bundle_mb:.1} MB, the sizes of\n\
         `tpl_basic`'s on Odoo 18) from the tenant's own `ir_attachment` rows and filestore copy,\n\
         as Odoo 18 does; none had to be compiled. *create to first web-client page*: both; it\n\
         has no Odoo registry load or QWeb rendering in it, which only the real-Odoo section shows.\n\
         With {RUNS} samples p99 is the slowest one.\n\
         Machine: 2 cores shared with other engineers' builds (1-minute load average {load_before}\n\
         at the start, {load_after} at the end), so compare within the run;\n\
         `cargo bench -p portal --bench create_to_active` (release build).\n\n\
         Target, create request under {TARGET:?}: **{verdict}**.\n\n\
         | measure | p50 | p99 | min | max |\n|---|---|---|---|---|\n\
         | raw template clone | {} |\n| create request (202) | {} |\n| create to active | {} |\n\
         | first visit (login page, sign-in, web client, all bundles) | {} |\n\
         | create to first web-client page fully loaded | {} |\n",
        summary(&mut clone),
        summary(&mut request),
        summary(&mut to_active),
        summary(&mut visit),
        summary(&mut to_web_client),
        bundles_n = bundles.0,
        bundle_mb = bundles.1 as f64 / 1e6,
        load_after = load_average(),
    );
    let path = saas_testkit::write_bench_section("portal", &body)?;
    println!("{body}\nwritten to {}", path.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    saas_testkit::bench::main(run)
}
