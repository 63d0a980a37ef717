//! Seals a template the way `odoo/build-templates.sh` does, by running the very
//! same `odoo/seal-template.sql` with psql: every test clones a closed template
//! that keeps no known password.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;
use rand::Rng as _;
use sha2::Sha512;

/// `odoo/seal-template.sql` of this repository.
pub fn seal_sql_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../odoo/seal-template.sql")
}

/// Seals database `building` and renames it `template` (see the SQL file).
pub async fn seal_template(building: &str, template: &str) -> anyhow::Result<()> {
    let output = tokio::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .arg("-v")
        .arg(format!("building={building}"))
        .arg("-v")
        .arg(format!("template={template}"))
        .arg("-v")
        .arg(format!("admin_hash={}", random_password_hash()))
        .arg("-f")
        .arg(seal_sql_path())
        .arg(crate::admin_database_url())
        .output()
        .await
        .context("running psql")?;
    anyhow::ensure!(
        output.status.success(),
        "sealing {building} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// What the build script's python3 makes with passlib: Odoo's
/// `$pbkdf2-sha512$rounds$salt$checksum` of a random secret nobody keeps. Few
/// rounds: the secret is 32 random bytes, so the hash protects nothing anyway.
fn random_password_hash() -> String {
    let mut rng = rand::rng();
    let secret: [u8; 32] = rng.random();
    let salt: [u8; 16] = rng.random();
    let rounds = 1000;
    let mut checksum = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(&secret, &salt, rounds, &mut checksum);
    format!(
        "$pbkdf2-sha512${rounds}${}${}",
        ab64(&salt),
        ab64(&checksum)
    )
}

/// passlib's "adapted base64": standard alphabet with `.` for `+`, no padding.
fn ab64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(bytes)
        .replace('+', ".")
}
