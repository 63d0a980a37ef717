//! Provision latency (p50/p99) from a ~20 MB and a ~200 MB template next to the raw
//! `CREATE DATABASE ... TEMPLATE` time of the same run, and backup throughput and
//! peak RSS for a ~500 MB database. Writes its section of `bench/RESULTS.md`.
//!
//! `cargo bench -p saas-odoo --bench provision` (PostgreSQL of `TEST_DATABASE_URL`;
//! `BENCH_ITERATIONS` overrides the 20 provisions per template).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use saas_odoo::{
    AdminPassword, BackupStore, OdooServer, ProvisionOptions, ProvisionSpec, backup_tenant,
    hash_password_with, provision,
};
use secrecy::SecretString;
use sqlx::{Connection as _, Executor as _, PgConnection};
use url::Url;

const ROLE: &str = "saas_odoo_bench";
const MB: f64 = 1024.0 * 1024.0;

fn fixture() -> PathBuf {
    saas_testkit::odoo::fixture_path()
}

async fn admin() -> anyhow::Result<PgConnection> {
    Ok(PgConnection::connect(&saas_testkit::admin_database_url()).await?)
}

async fn exec(sql: &str) -> anyhow::Result<()> {
    admin().await?.execute(sql).await?;
    Ok(())
}

async fn drop_db(name: &str) -> anyhow::Result<()> {
    let mut conn = admin().await?;
    let _ = conn
        .execute(format!(r#"ALTER DATABASE "{name}" IS_TEMPLATE false"#).as_str())
        .await;
    conn.execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
        .await?;
    Ok(())
}

/// Fixture + rows until the database is about `target_mb`; returns its size in MB.
async fn build_db(name: &str, target_mb: f64, root: &Path) -> anyhow::Result<f64> {
    drop_db(name).await?;
    exec(&format!(r#"CREATE DATABASE "{name}" OWNER {ROLE}"#)).await?;
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(fixture())
        .arg(saas_testkit::database_url(name)?)
        .env("PGOPTIONS", format!("-c role={ROLE}"))
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conn = PgConnection::connect(&saas_testkit::database_url(name)?).await?;
    conn.execute(format!("SET ROLE {ROLE}").as_str()).await?;
    let mut batch = 0i32;
    while db_size_mb(&mut conn, name).await? < target_mb {
        // ~900-byte rows of distinct md5 text: deflate gets them to about half, like
        // business data rather than like a repeated string.
        sqlx::query(
            "INSERT INTO ir_attachment (name, type, res_model, res_id, description, create_date) \
             SELECT 'doc ' || g, 'url', 'res.partner', g, \
                    (SELECT string_agg(md5((g * 31 + k)::text), ' ') FROM generate_series(1, 28) k), now() \
             FROM generate_series($1 + 1, $1 + 5000) g",
        )
        .bind(batch * 5000)
        .execute(&mut conn)
        .await?;
        batch += 1;
    }
    conn.execute("CHECKPOINT").await.ok();
    // A filestore like a real template's (~176 KB): 44 files of 4 KB.
    for i in 0..44u32 {
        let dir = root.join(name).join(format!("{:02x}", i));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{:040x}", i)), vec![i as u8; 4096])?;
    }
    db_size_mb(&mut conn, name).await
}

async fn db_size_mb(conn: &mut PgConnection, name: &str) -> anyhow::Result<f64> {
    let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size($1::text)")
        .bind(name)
        .fetch_one(conn)
        .await?;
    Ok(bytes as f64 / MB)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

struct Row {
    label: String,
    size_mb: f64,
    raw: Vec<Duration>,
    provision: Vec<Duration>,
}

async fn measure(
    server: &OdooServer,
    template: &str,
    size_mb: f64,
    iterations: usize,
    hash: &str,
) -> anyhow::Result<Row> {
    let mut raw = Vec::new();
    let mut prov = Vec::new();
    let options = ProvisionOptions {
        probe: None,
        ..ProvisionOptions::default()
    };
    for i in 0..iterations {
        let raw_db = format!("bench_raw_{i}");
        let t = Instant::now();
        exec(&format!(
            r#"CREATE DATABASE "{raw_db}" OWNER {ROLE} TEMPLATE "{template}""#
        ))
        .await?;
        raw.push(t.elapsed());
        drop_db(&raw_db).await?;

        let db = format!("bench_t_{i}");
        let spec = ProvisionSpec {
            tenant_id: uuid::Uuid::new_v4(),
            db_name: db.clone(),
            template: template.to_owned(),
            base_url: Url::parse(&format!("https://bench{i}.saas.test"))?,
            company_name: format!("Bench {i}"),
            admin_login: format!("bench{i}@example.test"),
            admin_password: AdminPassword::Hashed(hash.to_owned()),
        };
        let t = Instant::now();
        provision(server, &spec, &options).await?;
        prov.push(t.elapsed());
        drop_db(&db).await?;
        std::fs::remove_dir_all(server.filestore_dir(&db)?).ok();
    }
    raw.sort();
    prov.sort();
    Ok(Row {
        label: template.to_owned(),
        size_mb,
        raw,
        provision: prov,
    })
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn write_section(section: &str) -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/RESULTS.md");
    let start = "<!-- odoo-data-plane:start -->";
    let end = "<!-- odoo-data-plane:end -->";
    let current =
        std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmark results\n".to_owned());
    let block = format!("{start}\n{section}{end}\n");
    let updated = match (current.find(start), current.find(end)) {
        (Some(a), Some(b)) if b > a => format!(
            "{}{}{}",
            &current[..a],
            block,
            &current[b + end.len()..].trim_start_matches('\n')
        ),
        _ => format!(
            "{}\n{}",
            current.trim_end_matches('\n').to_owned() + "\n",
            block
        ),
    };
    std::fs::write(&path, updated).context("writing bench/RESULTS.md")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::var("BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    exec(&format!("DO $$ BEGIN CREATE ROLE {ROLE} LOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$")).await?;
    let work = tempfile::tempdir()?;
    let root = work.path().join("filestore");
    let server = OdooServer::new(
        SecretString::from(saas_testkit::admin_database_url()),
        ROLE,
        &root,
        Url::parse("http://127.0.0.1:9")?,
    )?;
    let hash = hash_password_with("bench", 600_000, b"0123456789abcdef");
    let hash_started = Instant::now();
    let _ = hash_password_with("bench", 600_000, b"fedcba9876543210");
    let hash_time = hash_started.elapsed();

    let mut rows = Vec::new();
    for (template, target) in [("tpl_bench20", 20.0), ("tpl_bench200", 200.0)] {
        eprintln!("building {template} (~{target} MB)...");
        // Built and sealed the way odoo/build-templates.sh does it.
        let building = format!("{template}__building");
        drop_db(template).await?;
        let size = build_db(&building, target, &root).await?;
        let files = root.join(template);
        if files.exists() {
            std::fs::remove_dir_all(&files)?;
        }
        std::fs::rename(root.join(&building), &files)?;
        saas_testkit::odoo::seal_template(&building, template).await?;
        eprintln!("measuring {iterations} provisions from {template} ({size:.0} MB)...");
        rows.push(measure(&server, template, size, iterations, &hash).await?);
        drop_db(template).await?;
    }

    eprintln!("building a ~500 MB tenant for the backup...");
    let tenant = "bench_backup_src";
    let size = build_db(tenant, 500.0, &root).await?;
    let store =
        BackupStore::from_url(&format!("file://{}", work.path().join("backups").display()))?;
    let rss_before = vm_hwm_kb();
    let started = Instant::now();
    let info = backup_tenant(&server, tenant, &store, "bench.zip").await?;
    let backup_time = started.elapsed();
    let rss_peak = vm_hwm_kb();
    drop_db(tenant).await?;

    let mut section = String::from("## Odoo data plane (issue 4)\n\n");
    section.push_str(&format!(
        "Provisioning without the Odoo probe, admin password already hashed (a 600,000-round hash costs {} on this machine and runs on a blocking thread while the template is cloned, so with a clear-text password a provision takes about max(clone, hash) + overhead), {iterations} runs per template, each next to a raw `CREATE DATABASE ... OWNER ... TEMPLATE` of the same template; local PostgreSQL 15, 2 cores, release build.\n\n",
        ms(hash_time)
    ));
    section.push_str("| template | size | raw clone p50 | raw clone p99 | provision p50 | provision p99 | overhead p50 |\n|---|---|---|---|---|---|---|\n");
    for row in &rows {
        let (rp50, pp50) = (percentile(&row.raw, 0.5), percentile(&row.provision, 0.5));
        section.push_str(&format!(
            "| {} | {:.0} MB | {} | {} | {} | {} | {} |\n",
            row.label,
            row.size_mb,
            ms(rp50),
            ms(percentile(&row.raw, 0.99)),
            ms(pp50),
            ms(percentile(&row.provision, 0.99)),
            ms(pp50.saturating_sub(rp50)),
        ));
    }
    section.push_str(&format!(
        "\nBackup of a {size:.0} MB database (`pg_dump` + 176 KB filestore -> zip -> `file://` object store): {:.1} s, {:.1} MB/s of database, archive {:.1} MB; peak RSS of the process (VmHWM) {:.1} MB (before the backup: {:.1} MB; `pg_dump` runs as its own process).\n\n",
        backup_time.as_secs_f64(),
        size / backup_time.as_secs_f64(),
        info.size_bytes as f64 / MB,
        rss_peak as f64 / 1024.0,
        rss_before as f64 / 1024.0,
    ));
    section.push_str(&format!(
        "Targets: platform overhead under 100 ms; backup RSS under 64 MB.\nRun: `cargo bench -p saas-odoo --bench provision` (measured {}).\n",
        chrono::Utc::now().format("%Y-%m-%d")
    ));
    print!("{section}");
    write_section(&section)
}
