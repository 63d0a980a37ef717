//! Peak RSS and throughput of backing up a ~500 MB tenant (database plus
//! filestore) into a real S3 server (Garage on loopback, see
//! `saas_testkit::garage`), encrypted at rest, as the worker does it:
//! `pg_dump` and the filestore -> zip -> XChaCha20-Poly1305 -> multipart
//! upload. The target: the process's RSS stays under 64 MB. Writes its
//! section of `bench/RESULTS.md`.
//!
//! `cargo bench -p saas-odoo --bench backup_s3` (PostgreSQL of
//! `TEST_DATABASE_URL`; needs the `garage` binary; `BENCH_DB_MB` and
//! `BENCH_FILES_MB` override the 250 + 250 MB).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use saas_core::backup_store::{BackupStoreSettings, EncryptionKey};
use saas_core::config::Env;
use saas_odoo::{BackupStore, OdooServer, backup_tenant};
use secrecy::SecretString;
use sqlx::{Connection as _, Executor as _, PgConnection};
use url::Url;

const ROLE: &str = "saas_odoo_bench";
const MB: f64 = 1024.0 * 1024.0;
const TENANT: &str = "bench_s3_backup_src";

async fn exec(sql: &str) -> anyhow::Result<()> {
    PgConnection::connect(&saas_testkit::admin_database_url())
        .await?
        .execute(sql)
        .await?;
    Ok(())
}

async fn db_size_mb(conn: &mut PgConnection) -> anyhow::Result<f64> {
    let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(conn)
        .await?;
    Ok(bytes as f64 / MB)
}

/// The Odoo fixture plus rows until the database is about `target_mb`.
async fn build_db(target_mb: f64) -> anyhow::Result<f64> {
    exec(&format!(
        r#"DROP DATABASE IF EXISTS "{TENANT}" WITH (FORCE)"#
    ))
    .await?;
    exec(&format!(r#"CREATE DATABASE "{TENANT}" OWNER {ROLE}"#)).await?;
    let out = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(saas_testkit::odoo::fixture_path())
        .arg(saas_testkit::database_url(TENANT)?)
        .env("PGOPTIONS", format!("-c role={ROLE}"))
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conn = PgConnection::connect(&saas_testkit::database_url(TENANT)?).await?;
    conn.execute(format!("SET ROLE {ROLE}").as_str()).await?;
    let mut batch = 0i32;
    while db_size_mb(&mut conn).await? < target_mb {
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
    db_size_mb(&mut conn).await
}

/// Files of random bytes (attachments deflate cannot shrink), `mb` in all.
fn build_filestore(dir: &Path, mb: usize) -> anyhow::Result<()> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut chunk = vec![0u8; 1 << 20];
    for file in 0..mb.div_ceil(10) {
        let sub = dir.join(format!("{file:02x}"));
        std::fs::create_dir_all(&sub)?;
        let mut out =
            std::io::BufWriter::new(std::fs::File::create(sub.join(format!("{file:040x}")))?);
        for _ in 0..10.min(mb - file * 10) {
            for word in chunk.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            std::io::Write::write_all(&mut out, &chunk)?;
        }
    }
    Ok(())
}

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

fn write_section(section: &str) -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/RESULTS.md");
    let start = "<!-- offsite-backup:start -->";
    let end = "<!-- offsite-backup:end -->";
    let current =
        std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmark results\n".to_owned());
    let block = format!("{start}\n{section}{end}\n");
    let updated = match (current.find(start), current.find(end)) {
        (Some(a), Some(b)) if b > a => format!(
            "{}{}{}",
            &current[..a],
            block,
            current[b + end.len()..].trim_start_matches('\n')
        ),
        _ => format!(
            "{}\n{}",
            current.trim_end_matches('\n'),
            "\n".to_owned() + &block
        ),
    };
    std::fs::write(&path, updated).context("writing bench/RESULTS.md")
}

fn env_mb(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (db_mb, files_mb) = (env_mb("BENCH_DB_MB", 250), env_mb("BENCH_FILES_MB", 250));
    let garage = saas_testkit::PrivateGarage::start_if_installed("bench")
        .await?
        .context("this bench needs the garage binary")?;
    exec(&format!("DO $$ BEGIN CREATE ROLE {ROLE} LOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$")).await?;
    let work = tempfile::tempdir()?;
    let root = work.path().join("filestore");
    let server = OdooServer::new(
        SecretString::from(saas_testkit::admin_database_url()),
        ROLE,
        &root,
        Url::parse("http://127.0.0.1:9")?,
    )?;
    eprintln!("building a tenant of ~{db_mb} MB database + {files_mb} MB filestore...");
    let size = build_db(db_mb as f64).await?;
    build_filestore(&root.join(TENANT), files_mb)?;
    let settings = BackupStoreSettings::from_env(&Env::from_pairs(garage.env(
        "BACKUP_STORE_URL",
        "bench",
        "odoo-saas",
    )))?;
    let (store, _) = BackupStore::from_settings(&settings)?;
    let store = store.with_encryption(Some(EncryptionKey::from_bytes([0x5a; 32])));

    // The peak is sampled every 10 ms while the backup runs.
    let before = rss_kb("VmRSS:");
    let peak = Arc::new(AtomicU64::new(before));
    let running = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, running) = (Arc::clone(&peak), Arc::clone(&running));
        std::thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb("VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let started = Instant::now();
    let info = backup_tenant(&server, TENANT, &store, "bench/tenant.zip").await?;
    let took = started.elapsed();
    running.store(false, Ordering::Relaxed);
    let _ = sampler.join();
    let stored = store.size("bench/tenant.zip").await?;
    exec(&format!(
        r#"DROP DATABASE IF EXISTS "{TENANT}" WITH (FORCE)"#
    ))
    .await?;

    let peak_mb = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    let total_mb = size + files_mb as f64;
    let mut section = String::from("## Offsite backups to S3 (issue 15)\n\n");
    section.push_str(&format!(
        "Backup of a {total_mb:.0} MB tenant ({size:.0} MB database + {files_mb} MB filestore of random files) into Garage 2.5.0 on loopback, encrypted (XChaCha20-Poly1305 STREAM), 8 MiB multipart parts, two in flight: {:.1} s ({:.1} MB/s of tenant), zip {:.1} MB, object {:.1} MB. Peak RSS of the process while it ran (VmRSS sampled every 10 ms): **{peak_mb:.1} MB** (before: {:.1} MB; `pg_dump` runs as its own process). Target: under 64 MB. {}\n\n",
        took.as_secs_f64(),
        total_mb / took.as_secs_f64(),
        info.size_bytes as f64 / MB,
        stored as f64 / MB,
        before as f64 / 1024.0,
        if peak_mb < 64.0 { "Met." } else { "NOT met." },
    ));
    section.push_str(&format!(
        "Run: `cargo bench -p saas-odoo --bench backup_s3` (measured {}, debug-free release build, 2 shared cores).\n",
        chrono::Utc::now().format("%Y-%m-%d")
    ));
    print!("{section}");
    write_section(&section)
}
