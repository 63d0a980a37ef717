//! Reading backup zips (ours or Odoo's database manager's): structure and path
//! checks before anything is touched, then streaming extraction.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use crate::budget::Budget;
use crate::compat::{DumpHeader, read_header};
use crate::error::{OdooError, Result};

const MAX_MANIFEST: u64 = 16 << 20;
/// Bytes of `dump.sql` read for its header (pg_dump's version comments).
const HEAD_BYTES: u64 = 64 << 10;

/// Where things are in a checked archive.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub dump: usize,
    /// (entry index, path relative to the filestore directory)
    pub filestore: Vec<(usize, PathBuf)>,
    pub manifest: Option<serde_json::Value>,
    /// pg_dump's version comments at the top of `dump.sql`.
    pub header: DumpHeader,
}

fn bad(reason: impl Into<String>) -> OdooError {
    OdooError::InvalidArchive(reason.into())
}

/// Splits an entry name into safe relative components, or refuses it.
pub(crate) fn safe_components(name: &str) -> Result<Vec<&str>> {
    if name.contains('\0') || name.contains('\\') {
        return Err(bad(format!(
            "entry {name:?} has a NUL or backslash in its path"
        )));
    }
    if name.starts_with('/') || name.as_bytes().get(1) == Some(&b':') {
        return Err(bad(format!("entry {name:?} has an absolute path")));
    }
    let parts: Vec<&str> = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(bad(format!(
            "entry {name:?} points outside the archive (..)"
        )));
    }
    Ok(parts)
}

/// Opens the archive and checks every entry: a readable zip, safe paths, no links,
/// exactly one `dump.sql`, a parseable `manifest.json` if there is one; reads
/// the header of `dump.sql`.
pub(crate) fn inspect(path: &Path) -> Result<Layout> {
    let file = File::open(path).map_err(|e| OdooError::io(path, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        bad(format!(
            "not a readable zip archive (truncated or corrupt?): {e}"
        ))
    })?;
    let mut dump = None;
    let mut filestore = Vec::new();
    let mut manifest = None;
    for index in 0..zip.len() {
        let mut entry = zip
            .by_index(index)
            .map_err(|e| bad(format!("entry {index} is unreadable: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| bad(format!("entry {index} has an unreadable name: {e}")))?
            .into_owned();
        let parts = safe_components(&name)?;
        if entry.enclosed_name().is_none() {
            return Err(bad(format!("entry {name:?} has an unsafe path")));
        }
        if entry.is_symlink() {
            return Err(bad(format!("entry {name:?} is a symbolic link")));
        }
        if entry.is_dir() || parts.is_empty() {
            continue;
        }
        match parts.as_slice() {
            ["dump.sql"] => {
                if dump.replace(index).is_some() {
                    return Err(bad("two dump.sql entries"));
                }
            }
            ["manifest.json"] => {
                if entry.size() > MAX_MANIFEST {
                    return Err(bad("manifest.json is too large"));
                }
                let mut text = String::new();
                entry
                    .read_to_string(&mut text)
                    .map_err(|e| bad(format!("manifest.json is unreadable: {e}")))?;
                let value: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| bad(format!("manifest.json is not JSON: {e}")))?;
                if !value.is_object() {
                    return Err(bad("manifest.json is not a JSON object"));
                }
                manifest = Some(value);
            }
            ["filestore", rest @ ..] => {
                filestore.push((index, rest.iter().collect::<PathBuf>()));
            }
            _ => tracing::debug!("ignoring an unknown archive entry"),
        }
    }
    let dump = dump.ok_or_else(|| bad("dump.sql is missing: not an Odoo backup"))?;
    let header = read_header(&dump_head(&mut zip, dump)?);
    Ok(Layout {
        dump,
        filestore,
        manifest,
        header,
    })
}

/// Extracts the filestore into `staging` (created), every byte counted
/// against `budget` before it is written. Returns the number of files.
pub(crate) fn extract_filestore(
    path: &Path,
    layout: &Layout,
    staging: &Path,
    budget: &Budget,
) -> Result<usize> {
    let file = File::open(path).map_err(|e| OdooError::io(path, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| bad(e.to_string()))?;
    std::fs::create_dir_all(staging).map_err(|e| OdooError::io(staging, e))?;
    let mut buf = vec![0u8; 64 << 10];
    for (index, relative) in &layout.filestore {
        let target = staging.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| OdooError::io(parent, e))?;
        }
        let mut entry = zip
            .by_index(*index)
            .map_err(|e| bad(format!("filestore entry unreadable: {e}")))?;
        let mut out = File::create(&target).map_err(|e| OdooError::io(&target, e))?;
        loop {
            let n = entry.read(&mut buf).map_err(|e| {
                bad(format!(
                    "filestore entry {} is corrupt: {e}",
                    relative.display()
                ))
            })?;
            if n == 0 {
                break;
            }
            budget.add_files(n)?;
            out.write_all(&buf[..n])
                .map_err(|e| OdooError::io(&target, e))?;
        }
    }
    Ok(layout.filestore.len())
}

/// The first bytes of `dump.sql`, where pg_dump writes its header comments.
fn dump_head(zip: &mut zip::ZipArchive<File>, index: usize) -> Result<Vec<u8>> {
    let entry = zip
        .by_index(index)
        .map_err(|e| bad(format!("dump.sql is unreadable: {e}")))?;
    let mut head = Vec::new();
    entry
        .take(HEAD_BYTES)
        .read_to_end(&mut head)
        .map_err(|e| bad(format!("dump.sql is corrupt: {e}")))?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_checks() {
        assert_eq!(
            safe_components("filestore/ab/cd").ok(),
            Some(vec!["filestore", "ab", "cd"])
        );
        assert_eq!(safe_components("./dump.sql").ok(), Some(vec!["dump.sql"]));
        for bad in [
            "../x",
            "filestore/../../etc/passwd",
            "/etc/passwd",
            "C:/x",
            "a\\b",
            "a\0b",
        ] {
            assert!(safe_components(bad).is_err(), "{bad}");
        }
    }
}
