//! Filestore directories: copied into a staging directory and renamed into place,
//! so a directory under its final name is always complete.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{OdooError, Result};
use crate::server::OdooServer;
use saas_core::error_chain::Chain;

/// Copies `<root>/<template>` to `<root>/<db>` unless `<root>/<db>` already exists.
/// Returns whether it copied. A template without a filestore gives an empty one.
pub(crate) async fn copy_template_filestore(
    server: &OdooServer,
    template: &str,
    db: &str,
    crash_midway: bool,
) -> Result<bool> {
    let source = server.filestore_dir(template)?;
    let target = server.filestore_dir(db)?;
    let staging = server.staging_path("copy", db);
    let root = server.root().to_path_buf();
    let stale_prefix = format!(".saas-copy-{db}-");
    tokio::task::spawn_blocking(move || {
        if target.exists() {
            return Ok(false);
        }
        fs::create_dir_all(&root).map_err(|e| OdooError::io(&root, e))?;
        remove_stale(&root, &stale_prefix)?;
        if source.is_dir() {
            copy_tree(&source, &staging)?;
        } else {
            fs::create_dir(&staging).map_err(|e| OdooError::io(&staging, e))?;
        }
        if crash_midway {
            return Ok(true);
        }
        move_into_place(&staging, &target)
    })
    .await?
}

/// Renames a complete `staging` directory to `target`; if another run got there
/// first, keeps theirs and removes ours.
pub(crate) fn move_into_place(staging: &Path, target: &Path) -> Result<bool> {
    match fs::rename(staging, target) {
        Ok(()) => Ok(true),
        Err(e) if target.exists() => {
            tracing::debug!(error = %Chain(&e), "filestore already in place");
            remove_tree(staging)?;
            Ok(false)
        }
        Err(e) => Err(OdooError::io(target, e)),
    }
}

/// Removes leftovers of interrupted copies (`<root>/<prefix>*`).
pub(crate) fn remove_stale(root: &Path, prefix: &str) -> Result<()> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(OdooError::io(root, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| OdooError::io(root, e))?;
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            remove_tree(&entry.path())?;
        }
    }
    Ok(())
}

/// Copies regular files and directories under `from` to `to` (created). Symbolic
/// links are skipped: a filestore holds plain files only.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).map_err(|e| OdooError::io(to, e))?;
    for entry in fs::read_dir(from).map_err(|e| OdooError::io(from, e))? {
        let entry = entry.map_err(|e| OdooError::io(from, e))?;
        let kind = entry
            .file_type()
            .map_err(|e| OdooError::io(entry.path(), e))?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &dest).map_err(|e| OdooError::io(&dest, e))?;
        } else {
            tracing::warn!("skipping a non-regular file in a filestore");
        }
    }
    Ok(())
}

/// Removes a directory tree; a missing one is fine.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(OdooError::io(path, e)),
    }
}

/// Total size in bytes of the regular files under `path` (0 when it does not exist).
pub(crate) fn tree_size(path: &Path) -> Result<u64> {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(OdooError::io(path, e)),
    };
    let mut total = 0;
    for entry in entries {
        let entry = entry.map_err(|e| OdooError::io(path, e))?;
        let meta = entry
            .metadata()
            .map_err(|e| OdooError::io(entry.path(), e))?;
        if meta.is_dir() {
            total += tree_size(&entry.path())?;
        } else if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

/// Relative paths (with `/`) of the regular files under `path`, sorted.
pub(crate) fn list_files(path: &Path) -> Result<Vec<(String, PathBuf)>> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<()> {
        for entry in fs::read_dir(dir).map_err(|e| OdooError::io(dir, e))? {
            let entry = entry.map_err(|e| OdooError::io(dir, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| OdooError::io(entry.path(), e))?;
            let full = entry.path();
            if kind.is_dir() {
                walk(base, &full, out)?;
            } else if kind.is_file() {
                let rel = full
                    .strip_prefix(base)
                    .map_err(|e| OdooError::io(&full, io::Error::other(e)))?;
                let parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push((parts.join("/"), full));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    if path.is_dir() {
        walk(path, path, &mut out)?;
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_size_list_and_remove() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("ab"))?;
        fs::write(src.join("ab/abcdef"), b"hello")?;
        fs::write(src.join("top"), b"12")?;
        std::os::unix::fs::symlink("/etc/passwd", src.join("link"))?;
        let dst = dir.path().join("dst");
        copy_tree(&src, &dst)?;
        assert_eq!(fs::read(dst.join("ab/abcdef"))?, b"hello");
        assert!(!dst.join("link").exists(), "symlinks are not copied");
        assert_eq!(tree_size(&dst)?, 7);
        let names: Vec<String> = list_files(&dst)?.into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["ab/abcdef", "top"]);
        remove_tree(&dst)?;
        remove_tree(&dst)?;
        assert_eq!(tree_size(&dst)?, 0);
        Ok(())
    }
}
