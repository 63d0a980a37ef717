//! Backup zips made by tests: `dump.sql` (the Odoo 18 fixture plus whatever a
//! test adds) and a `manifest.json`, written straight to a file.

use std::io::Write as _;
use std::path::Path;

use zip::write::SimpleFileOptions;

/// A manifest like Odoo 18's database manager writes.
pub const MANIFEST_18: &str = r#"{"odoo_dump": "1", "db_name": "x", "version": "18.0", "major_version": "18.0", "pg_version": "15.2", "modules": {"base": "18.0.1.3"}}"#;

/// The fixture's SQL.
pub fn fixture_sql() -> anyhow::Result<Vec<u8>> {
    Ok(std::fs::read(super::fixture_path())?)
}

/// The fixture followed by `attack` (or preceded by it, `first`).
pub fn fixture_with(attack: &[u8], first: bool) -> anyhow::Result<Vec<u8>> {
    let fixture = fixture_sql()?;
    let mut dump = Vec::with_capacity(fixture.len() + attack.len() + 2);
    if first {
        dump.extend_from_slice(attack);
        dump.push(b'\n');
        dump.extend_from_slice(&fixture);
    } else {
        dump.extend_from_slice(&fixture);
        dump.push(b'\n');
        dump.extend_from_slice(attack);
    }
    Ok(dump)
}

/// Writes a backup zip at `path`: `manifest` (if any), `dump.sql`, and the
/// `filestore` entries.
pub fn write_backup(
    path: &Path,
    dump: &[u8],
    manifest: Option<&str>,
    filestore: &[(&str, &[u8])],
) -> anyhow::Result<()> {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    if let Some(manifest) = manifest {
        zip.start_file("manifest.json", options)?;
        zip.write_all(manifest.as_bytes())?;
    }
    zip.start_file("dump.sql", options.large_file(true))?;
    zip.write_all(dump)?;
    for (name, data) in filestore {
        zip.start_file(format!("filestore/{name}"), options)?;
        zip.write_all(data)?;
    }
    zip.finish()?;
    Ok(())
}
