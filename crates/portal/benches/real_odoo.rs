//! The customer's click to a logged-in web client on a real Odoo 18, when
//! `ODOO_TEST_URL` is set (the variables of `crates/odoo/tests/real_odoo.rs`;
//! without them it says so and writes nothing). The real portal and worker
//! binaries run against the real Odoo, its cluster and filestore:
//!
//! 1. `RUNS` instances one after another: `POST /api/v1/instances`, polled
//!    until active, then the customer's first visit (login page and its
//!    bundles, sign-in, web client `/odoo` and its bundles); next to a raw
//!    `CREATE DATABASE ... TEMPLATE` and Odoo's own `db.duplicate_database` of
//!    the same template, measured in the same run;
//! 2. PostgreSQL connections held by Odoo and by the platform once 50 and
//!    then 200 tenants exist and each had its first visit.
//!
//! Writes the `real-odoo` section of `bench/RESULTS.md`. Every database it
//! made is dropped at the end.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use reqwest::Method;
use saas_testkit::real_odoo::{DatabaseManager, TenantBrowser};
use serde_json::{Value, json};
use sqlx::{Connection as _, Executor as _};
use url::Url;

const RUNS: usize = 10;
/// Tenant counts whose connections are measured; `ODOO_BENCH_SCALE`
/// (comma-separated, ascending) overrides it for a shorter run.
const SCALE: [usize; 2] = [50, 200];

fn scale() -> anyhow::Result<Vec<usize>> {
    let Ok(list) = std::env::var("ODOO_BENCH_SCALE") else {
        return Ok(SCALE.to_vec());
    };
    let counts = list
        .split(',')
        .map(|n| n.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("ODOO_BENCH_SCALE={list:?}: expected counts like 50,200"))?;
    ensure!(
        counts.windows(2).all(|w| w[0] < w[1]) && counts.iter().all(|&n| n >= RUNS),
        "ODOO_BENCH_SCALE={list:?}: counts must ascend and be at least {RUNS}"
    );
    Ok(counts)
}

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
        ms(percentile(samples, 90.0)),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    )
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

struct Real {
    odoo: Url,
    pg_url: String,
    role: String,
    filestore: String,
    /// The plan's template name (`tpl_<name>` on the server).
    template: String,
    manager: DatabaseManager,
}

impl Real {
    fn from_env() -> anyhow::Result<Option<Self>> {
        let Ok(odoo) = std::env::var("ODOO_TEST_URL") else {
            return Ok(None);
        };
        let odoo = Url::parse(&odoo)?;
        let template = env_or("ODOO_TEST_TEMPLATE", "tpl_basic");
        Ok(Some(Self {
            manager: DatabaseManager {
                url: Url::parse(&env_or("ODOO_TEST_MANAGER_URL", odoo.as_str()))?,
                master_password: std::env::var("ODOO_TEST_MASTER_PASSWORD")
                    .context("ODOO_TEST_MASTER_PASSWORD is needed for db.duplicate_database")?,
            },
            odoo,
            pg_url: env_or("ODOO_TEST_PG_URL", &saas_testkit::admin_database_url()),
            role: env_or("ODOO_TEST_DB_ROLE", "odoo"),
            filestore: std::env::var("ODOO_TEST_FILESTORE")
                .context("ODOO_TEST_FILESTORE is required with ODOO_TEST_URL")?,
            template: template
                .strip_prefix("tpl_")
                .context("ODOO_TEST_TEMPLATE must be tpl_<name>")?
                .to_owned(),
        }))
    }

    async fn admin(&self) -> anyhow::Result<sqlx::PgConnection> {
        Ok(sqlx::PgConnection::connect(&self.pg_url).await?)
    }

    async fn raw_clone(&self, name: &str) -> anyhow::Result<Duration> {
        let mut admin = self.admin().await?;
        let started = Instant::now();
        admin
            .execute(
                format!(
                    r#"CREATE DATABASE "{name}" TEMPLATE "tpl_{}""#,
                    self.template
                )
                .as_str(),
            )
            .await?;
        let elapsed = started.elapsed();
        admin
            .execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str())
            .await?;
        Ok(elapsed)
    }

    /// Odoo's own duplicate of the template (database and filestore, new
    /// uuid, registry loaded), then Odoo's drop.
    async fn odoo_duplicate(&self, name: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.manager
            .duplicate(&format!("tpl_{}", self.template), name)
            .await?;
        let elapsed = started.elapsed();
        self.manager.drop_database(name).await?;
        Ok(elapsed)
    }

    /// (Odoo's role, the platform's services and data plane, others, max).
    async fn connections(&self) -> anyhow::Result<(i64, i64, i64, i64)> {
        let mut admin = self.admin().await?;
        let row: (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE usename = $1),
                    count(*) FILTER (WHERE usename <> $1 AND (application_name LIKE 'saas-odoo%'
                                     OR application_name IN ('admin', 'portal', 'worker'))),
                    count(*), current_setting('max_connections')::bigint
               FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        )
        .bind(&self.role)
        .fetch_one(&mut admin)
        .await?;
        Ok((row.0, row.1, row.2 - row.0 - row.1, row.3))
    }

    /// Drops every database whose name contains `suffix`, with its filestore.
    async fn drop_all(&self, suffix: &str) -> anyhow::Result<usize> {
        let mut admin = self.admin().await?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE strpos(datname, $1) > 0",
        )
        .bind(suffix)
        .fetch_all(&mut admin)
        .await?;
        for name in &names {
            admin
                .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                .await?;
            let _ = std::fs::remove_dir_all(Path::new(&self.filestore).join(name));
        }
        Ok(names.len())
    }
}

/// The real worker binary against the portal's database and Redis prefix,
/// tenants under `localhost` (Odoo's dbfilter reads the first label).
async fn start_worker(
    app: &common::TestApp,
    dir: &Path,
) -> anyhow::Result<saas_testkit::ServiceProcess> {
    let worker = saas_testkit::odoo::worker_binary(Path::new(env!("CARGO_BIN_EXE_portal")))?;
    let port = saas_testkit::free_port()?;
    let env: HashMap<String, String> = [
        ("DATABASE_URL", app.db.url.clone()),
        ("REDIS_URL", saas_testkit::redis_url()),
        ("REDIS_KEY_PREFIX", app.redis_prefix.clone()),
        // The portal's: the worker opens the password the portal sealed.
        ("SECRET_KEY", saas_testkit::contract::SECRET_KEY.to_owned()),
        ("BIND_ADDR", "127.0.0.1".to_owned()),
        ("WORKER_PORT", port.to_string()),
        ("BASE_DOMAIN", "localhost".to_owned()),
        ("PUBLIC_SCHEME", "http".to_owned()),
        (
            "ROUTING_MAP_PATH",
            dir.join("tenants.map").to_string_lossy().into_owned(),
        ),
        (
            "BACKUP_STORE_URL",
            format!("file://{}", app.backups_dir.path().display()),
        ),
        ("ODOO_PROBE_TIMEOUT_SECS", "60".to_owned()),
        ("LOG_LEVEL", "warn".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let process = saas_testkit::ServiceProcess::spawn(&worker, &[], &env)?;
    saas_testkit::wait_for_http(
        &format!("http://127.0.0.1:{port}/healthz"),
        Duration::from_secs(60),
    )
    .await?;
    Ok(process)
}

struct Created {
    request: Duration,
    to_active: Duration,
}

async fn create_and_wait(customer: &common::Customer, subdomain: &str) -> anyhow::Result<Created> {
    let started = Instant::now();
    let response = customer
        .api(
            Method::POST,
            "/api/v1/instances",
            Some(json!({ "subdomain": subdomain, "admin_password": common::PASSWORD })),
        )
        .await?;
    let request = started.elapsed();
    let status = response.status();
    let body: Value = response.json().await?;
    ensure!(status == 202, "create {subdomain}: {status} {body}");
    let id = body["instance"]["id"].as_str().context("no id")?.to_owned();
    loop {
        let now: Value = customer
            .api(Method::GET, &format!("/api/v1/instances/{id}"), None)
            .await?
            .json()
            .await?;
        match now["instance"]["state"].as_str() {
            Some("active") => break,
            Some("failed") => anyhow::bail!("{subdomain} failed: {now}"),
            _ if started.elapsed() > Duration::from_secs(300) => {
                anyhow::bail!("{subdomain} not active after 300 s: {now}")
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    Ok(Created {
        request,
        to_active: started.elapsed(),
    })
}

/// `/proc/loadavg`'s 1-minute figure: how quiet the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

async fn run(real: &Real, suffix: &str) -> anyhow::Result<String> {
    let load_before = load_average();
    let options = common::Options {
        template: real.template.clone(),
        extra_env: vec![("BASE_DOMAIN".into(), "localhost".into())],
        server: Some(common::ServerRow {
            internal_url: real.odoo.as_str().trim_end_matches('/').to_owned(),
            pg_url: real.pg_url.clone(),
            role: real.role.clone(),
            filestore_root: real.filestore.clone(),
        }),
    };
    let app = common::TestApp::start_with(options).await?;
    let dir = tempfile::tempdir()?;
    let _worker = start_worker(&app, dir.path()).await?;
    sqlx::query("UPDATE plans SET max_instances = 1000")
        .execute(&app.pool)
        .await?;
    sqlx::query("UPDATE servers SET capacity = 1000")
        .execute(&app.pool)
        .await?;
    let email = format!("bench-{suffix}@example.com");
    let customer = app.customer(&email).await?;

    let (mut raw, mut duplicate, mut request, mut to_active, mut visit, mut to_web_client) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut bundles = (0, 0);
    for i in 0..RUNS {
        raw.push(real.raw_clone(&format!("raw{i}_{suffix}")).await?);
        duplicate.push(real.odoo_duplicate(&format!("dup{i}_{suffix}")).await?);
        let subdomain = format!("rb{i}-{suffix}");
        let started = Instant::now();
        let created = create_and_wait(&customer, &subdomain).await?;
        let mut browser = TenantBrowser::new(&real.odoo, &format!("{subdomain}.localhost"))?;
        let first = browser
            .first_visit(&subdomain, &email, common::PASSWORD)
            .await?;
        first.ensure_complete()?;
        to_web_client.push(started.elapsed());
        request.push(created.request);
        to_active.push(created.to_active);
        visit.push(first.took);
        bundles = (
            first.login_page.bundles.len() + first.web_client.bundles.len(),
            first.login_page.bundle_bytes() + first.web_client.bundle_bytes(),
        );
    }

    let mut scale_rows = String::new();
    let mut tenants: Vec<String> = (0..RUNS).map(|i| format!("rb{i}-{suffix}")).collect();
    for target in scale()? {
        let started = Instant::now();
        while tenants.len() < target {
            // Four at a time, as the worker's default concurrency runs them.
            let batch: Vec<String> = (tenants.len()..(tenants.len() + 4).min(target))
                .map(|i| format!("rs{i}-{suffix}"))
                .collect();
            let creates = batch.iter().map(|s| create_and_wait(&customer, s));
            for created in futures::future::join_all(creates).await {
                created?;
            }
            for subdomain in &batch {
                let mut browser =
                    TenantBrowser::new(&real.odoo, &format!("{subdomain}.localhost"))?;
                browser
                    .first_visit(subdomain, &email, common::PASSWORD)
                    .await?
                    .ensure_complete()?;
            }
            tenants.extend(batch);
        }
        let (odoo, platform, other, limit) = real.connections().await?;
        scale_rows.push_str(&format!(
            "| {target} | {odoo} | {platform} | {other} | {} of {limit} | {:.0} s |\n",
            odoo + platform + other,
            started.elapsed().as_secs_f64()
        ));
        println!("{target} tenants: odoo {odoo}, platform {platform}, other {other}, max {limit}");
    }

    Ok(format!(
        "## Real Odoo 18: click to logged-in web client, connections per tenant count (issue 12)\n\n\
         Against a real Odoo 18.0 Community (nightly 18.0-20250702, Python 3.11, this repository's\n\
         `odoo/odoo.conf`: 4 HTTP workers, 1 cron worker, `db_maxconn` 8, `db_maxconn_gevent` 16)\n\
         on loopback, template `tpl_{template}` built by `odoo/build-templates.sh` (its {bundles_n}\n\
         asset bundles, {bundle_mb:.1} MB, come with the template). The real portal and worker\n\
         binaries (release build) run against Odoo's cluster; PostgreSQL 15, `max_connections`\n\
         {limit_note}. Machine: 2 cores shared with other builds and test runs (1-minute load average\n\
         {load_before} at the start, {load_after} at the end), measured {date}.\n\
         `cargo bench -p portal --bench real_odoo` with the `ODOO_TEST_*` variables set.\n\n\
         {RUNS} instances one after another. *create request*: `POST /api/v1/instances` until its 202,\n\
         which seals the customer's Odoo password (AEAD, key derived from `SECRET_KEY`) into the\n\
         operation; the worker hashes it while the template clones.\n\
         *create to active*: `POST /api/v1/instances` until the API\n\
         reports `active` (clone, filestore copy, configuration, probe warming every Odoo worker).\n\
         *first visit*: `/web/login` and its bundles, sign-in (`/web/session/authenticate`,\n\
         pbkdf2-sha512 600,000 rounds in Odoo), `/odoo` and its bundles, 6 at a time like a browser.\n\
         *click to logged-in web client*: both (target: 3 s p50). Next to them, in the same run:\n\
         `CREATE DATABASE ... TEMPLATE` of the template, and Odoo's own `db.duplicate_database`\n\
         of it (database, filestore, new uuid, registry load; by the sibling Odoo with `list_db`).\n\n\
         | measure | p50 | p90 | min | max |\n|---|---|---|---|---|\n\
         | raw template clone | {} |\n\
         | Odoo's db.duplicate_database | {} |\n\
         | create request (202) | {} |\n\
         | create to active | {} |\n\
         | first visit (login page, sign-in, web client, all bundles) | {} |\n\
         | click to logged-in web client | {} |\n\n\
         Connections once that many tenants exist and each had its first visit (tenants created\n\
         through the portal, 4 at a time, each visited once; counted from `pg_stat_activity` right\n\
         after the last visit; *platform*: the portal's and worker's pools and the data plane):\n\n\
         | tenants | Odoo | platform | other | in use | time to create and visit the tenants since the previous row |\n|---|---|---|---|---|---|\n\
         {scale_rows}\n\
         Odoo's share stays bounded by its processes, (4 + 1) x 8 + 16 = 56, whatever the tenant\n\
         count (README, Operations: PostgreSQL connections); with Odoo's default `db_maxconn` 64 it\n\
         grew with every tenant served until PostgreSQL's 100 were gone at about 22 tenants (as\n\
         issue 12 measured; not re-measured here).\n",
        summary(&mut raw),
        summary(&mut duplicate),
        summary(&mut request),
        summary(&mut to_active),
        summary(&mut visit),
        summary(&mut to_web_client),
        template = real.template,
        bundles_n = bundles.0,
        bundle_mb = bundles.1 as f64 / 1e6,
        limit_note = real.connections().await?.3,
        load_after = load_average(),
        date = chrono::Utc::now().format("%Y-%m-%d"),
    ))
}

async fn bench() -> anyhow::Result<()> {
    let Some(real) = Real::from_env()? else {
        println!(
            "ODOO_TEST_URL is not set: the real-Odoo benchmark needs a real Odoo (see crates/odoo/tests/real_odoo.rs)"
        );
        return Ok(());
    };
    let suffix = saas_testkit::unique_suffix();
    let outcome = run(&real, &suffix).await;
    let dropped = real.drop_all(&suffix).await?;
    println!("dropped {dropped} databases of this run");
    let body = outcome?;
    let path = saas_testkit::write_bench_section("real-odoo", &body)?;
    println!("{body}\nwritten to {}", path.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    saas_testkit::bench::main(bench)
}
