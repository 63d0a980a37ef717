//! Uploaded backup zips: received into a temporary file within the size
//! limit, then checked (readable zip, one `dump.sql`, safe paths, no links)
//! before anything is stored or restored.

use std::io::Read as _;
use std::path::Path;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;

use crate::error::AppError;

const MAX_MANIFEST: u64 = 1 << 20;

/// A received upload: a temporary file removed when dropped.
pub struct Received {
    pub file: tempfile::TempPath,
    pub size: u64,
    pub sha256: String,
}

/// Writes `body` to a temporary file; 413 naming `file` past `limit` bytes.
pub async fn receive<S, E>(mut body: S, limit: u64) -> Result<Received, AppError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let path = tempfile::NamedTempFile::new()
        .map_err(|e| AppError::Internal(e.into()))?
        .into_temp_path();
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| AppError::invalid("file", format!("the upload broke off: {e}")))?;
        size += chunk.len() as u64;
        if size > limit {
            return Err(AppError::TooLarge {
                field: "file",
                message: format!("the file is larger than {} MB", limit / (1024 * 1024)),
            });
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
    }
    file.flush()
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    if size == 0 {
        return Err(AppError::invalid("file", "no file was uploaded"));
    }
    Ok(Received {
        file: path,
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// Checks the archive on a blocking thread; the reason names what is wrong.
pub async fn validate(path: &Path) -> Result<(), AppError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || inspect(&path))
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(|reason| AppError::invalid("file", reason))
}

/// Splits an entry name into safe relative components, or says why not.
fn safe_components(name: &str) -> Result<Vec<&str>, String> {
    if name.contains('\0') || name.contains('\\') {
        return Err(format!("entry {name:?} has a NUL or backslash in its path"));
    }
    if name.starts_with('/') || name.as_bytes().get(1) == Some(&b':') {
        return Err(format!("entry {name:?} has an absolute path"));
    }
    let parts: Vec<&str> = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(format!("entry {name:?} points outside the archive (..)"));
    }
    Ok(parts)
}

fn inspect(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| format!("not a readable zip archive (truncated or corrupt?): {e}"))?;
    let mut dumps = 0;
    for index in 0..zip.len() {
        let mut entry = zip
            .by_index(index)
            .map_err(|e| format!("entry {index} is unreadable: {e}"))?;
        let name = entry
            .name()
            .map_err(|e| format!("entry {index} has an unreadable name: {e}"))?
            .into_owned();
        let parts = safe_components(&name)?;
        if entry.enclosed_name().is_none() {
            return Err(format!("entry {name:?} has an unsafe path"));
        }
        if entry.is_symlink() {
            return Err(format!("entry {name:?} is a symbolic link"));
        }
        if entry.is_dir() {
            continue;
        }
        match parts.as_slice() {
            ["dump.sql"] => dumps += 1,
            ["manifest.json"] => {
                if entry.size() > MAX_MANIFEST {
                    return Err("manifest.json is too large".to_owned());
                }
                let mut text = String::new();
                entry
                    .read_to_string(&mut text)
                    .map_err(|e| format!("manifest.json is unreadable: {e}"))?;
                let value: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| format!("manifest.json is not JSON: {e}"))?;
                if !value.is_object() {
                    return Err("manifest.json is not a JSON object".to_owned());
                }
            }
            _ => {}
        }
    }
    match dumps {
        0 => Err("dump.sql is missing: not an Odoo backup".to_owned()),
        1 => Ok(()),
        _ => Err("two dump.sql entries".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn zip_with(entries: &[(&str, &[u8])]) -> anyhow::Result<tempfile::NamedTempFile> {
        let file = tempfile::NamedTempFile::new()?;
        let mut zip = zip::ZipWriter::new(file.reopen()?);
        for (name, body) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())?;
            zip.write_all(body)?;
        }
        zip.finish()?;
        Ok(file)
    }

    #[test]
    fn accepts_odoo_layout_and_refuses_the_rest() -> anyhow::Result<()> {
        let good = zip_with(&[
            ("dump.sql", b"--"),
            ("manifest.json", b"{}"),
            ("filestore/ab/x", b"x"),
        ])?;
        assert_eq!(inspect(good.path()), Ok(()));
        let missing = zip_with(&[("manifest.json", b"{}")])?;
        assert!(inspect(missing.path()).is_err_and(|e| e.contains("dump.sql")));
        let escape = zip_with(&[("dump.sql", b"--"), ("../evil", b"x")])?;
        assert!(inspect(escape.path()).is_err_and(|e| e.contains("..")));
        let absolute = zip_with(&[("dump.sql", b"--"), ("/etc/passwd", b"x")])?;
        assert!(inspect(absolute.path()).is_err());
        let mut not_zip = tempfile::NamedTempFile::new()?;
        not_zip.write_all(b"hello")?;
        assert!(inspect(not_zip.path()).is_err_and(|e| e.contains("zip")));
        Ok(())
    }
}
