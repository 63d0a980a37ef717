//! What the worker's sweep needs to find leftovers of interrupted backups:
//! the objects under a prefix with their age, and, for a `file://` store,
//! the multipart staging files (`<key>#<n>`) object_store's LocalFileSystem
//! writes parts into and renames into place only when an upload completes.
//! A process killed mid-upload leaves its staging file behind; object_store
//! never lists it, so it is found on disk here; for an S3 store, the
//! multipart uploads never completed nor aborted (ListMultipartUploads).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use object_store::path::Path as ObjectPath;

use crate::error::{OdooError, Result};
use crate::store::BackupStore;

/// An object in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// The key, as recorded in `backups.object_key`.
    pub key: String,
    pub last_modified: DateTime<Utc>,
    pub size: u64,
}

/// A multipart staging file of a `file://` store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagingFile {
    pub path: PathBuf,
    pub modified: DateTime<Utc>,
}

impl BackupStore {
    /// The first-level "directories" of the store (the worker keeps each
    /// tenant's backups under `<tenant id>/`).
    pub async fn top_level_prefixes(&self) -> Result<Vec<String>> {
        let root = self.path_prefix();
        let listed = self
            .inner()
            .list_with_delimiter(if root.as_ref().is_empty() {
                None
            } else {
                Some(&root)
            })
            .await?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|prefix| prefix.filename().map(str::to_owned))
            .collect())
    }

    /// Every object below `prefix` (a relative `a/b`), with its age.
    pub async fn list_under(&self, prefix: &str) -> Result<Vec<StoredObject>> {
        let root = self.path_prefix();
        let below = self.path(prefix)?;
        let metas: Vec<object_store::ObjectMeta> =
            self.inner().list(Some(&below)).try_collect().await?;
        Ok(metas
            .into_iter()
            .map(|meta| StoredObject {
                key: relative_key(&root, &meta.location),
                last_modified: meta.last_modified,
                size: meta.size,
            })
            .collect())
    }

    /// The store's own key prefix (`s3://bucket/<prefix>`).
    fn path_prefix(&self) -> ObjectPath {
        self.prefix().clone()
    }

    /// The multipart uploads below `prefix` (a relative `a/b`; `None` is the
    /// whole store) that were started and never completed nor aborted (S3
    /// only: a `file://` store has staging files instead, see
    /// [`local_staging_files`]).
    pub async fn incomplete_uploads(&self, prefix: Option<&str>) -> Result<Vec<UnfinishedUpload>> {
        let Some(s3) = self.s3() else {
            return Ok(Vec::new());
        };
        let root = self.path_prefix();
        let below = match prefix {
            Some(prefix) => format!("{}/", self.path(prefix)?),
            None if root.as_ref().is_empty() => String::new(),
            None => format!("{root}/"),
        };
        let found = s3
            .incomplete_uploads(&below)
            .await
            .map_err(|reason| OdooError::invalid("incomplete uploads", reason))?;
        Ok(found
            .into_iter()
            .map(|upload| UnfinishedUpload {
                key: relative_key(&root, &ObjectPath::from(upload.path.as_str())),
                initiated: upload.initiated,
                upload,
            })
            .collect())
    }

    /// Aborts an unfinished upload [`incomplete_uploads`] found.
    ///
    /// [`incomplete_uploads`]: BackupStore::incomplete_uploads
    pub async fn abort_upload(&self, upload: &UnfinishedUpload) -> Result<()> {
        match self.s3() {
            Some(s3) => s3
                .abort_upload(&upload.upload)
                .await
                .map_err(|reason| OdooError::invalid("aborting an upload", reason)),
            None => Ok(()),
        }
    }
}

/// A multipart upload of an S3 store nobody completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedUpload {
    /// The key it was meant for, relative to the store's prefix.
    pub key: String,
    pub initiated: DateTime<Utc>,
    upload: saas_core::backup_store::IncompleteUpload,
}

fn relative_key(root: &ObjectPath, location: &ObjectPath) -> String {
    location
        .prefix_match(root)
        .map(|parts| {
            parts
                .map(|p| p.as_ref().to_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_else(|| location.to_string())
}

/// The multipart staging files below `prefix` of the store `store_url`
/// names, when it is a `file://` store (none otherwise: an S3 store's
/// unfinished uploads are [`BackupStore::incomplete_uploads`]). Blocking:
/// run it off the async executor.
pub fn local_staging_files(store_url: &str, prefix: &str) -> Result<Vec<StagingFile>> {
    let url =
        url::Url::parse(store_url).map_err(|e| OdooError::invalid("backup URL", e.to_string()))?;
    if url.scheme() != "file" {
        return Ok(Vec::new());
    }
    let root = url
        .to_file_path()
        .map_err(|()| OdooError::invalid("backup URL", "file:// needs an absolute path"))?;
    if prefix.split('/').any(|part| part == "..") {
        return Err(OdooError::invalid("backup prefix", prefix));
    }
    let mut found = Vec::new();
    collect_staging(&root.join(prefix), &mut found)?;
    Ok(found)
}

fn collect_staging(dir: &Path, found: &mut Vec<StagingFile>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(OdooError::io(dir, err)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| OdooError::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| OdooError::io(&path, e))?;
        if kind.is_dir() {
            collect_staging(&path, found)?;
        } else if kind.is_file() && is_staging_name(&entry.file_name().to_string_lossy()) {
            let modified = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            found.push(StagingFile {
                path,
                modified: modified.into(),
            });
        }
    }
    Ok(())
}

/// `name#<digits>`: what LocalFileSystem names the file an upload is staged in.
fn is_staging_name(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(stem, suffix)| {
        !stem.is_empty() && !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names() {
        assert!(is_staging_name("20250101T000000Z-abcd.zip#1"));
        assert!(is_staging_name("x.zip#123"));
        assert!(!is_staging_name("x.zip"));
        assert!(!is_staging_name("x.zip#"));
        assert!(!is_staging_name("x.zip#1a"));
        assert!(!is_staging_name("#1"));
    }

    #[tokio::test]
    async fn lists_objects_with_keys_as_recorded_and_finds_staging_files() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let url = format!("file://{}/store", dir.path().display());
        let store = BackupStore::from_url(&url)?;
        let source = dir.path().join("src.bin");
        std::fs::write(&source, vec![1u8; 1024])?;
        store.upload_file("tenant-a/db/one.zip", &source).await?;
        store.upload_file("tenant-b/two.zip", &source).await?;
        std::fs::write(dir.path().join("store/tenant-a/db/cut.zip#3"), b"partial")?;

        let mut prefixes = store.top_level_prefixes().await?;
        prefixes.sort();
        assert_eq!(prefixes, ["tenant-a", "tenant-b"]);
        let listed = store.list_under("tenant-a").await?;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].key, "tenant-a/db/one.zip");
        assert_eq!(listed[0].size, 1024);

        let staging = local_staging_files(&url, "tenant-a")?;
        assert_eq!(staging.len(), 1, "{staging:?}");
        assert!(staging[0].path.ends_with("tenant-a/db/cut.zip#3"));
        assert!(local_staging_files(&url, "tenant-b")?.is_empty());
        assert!(local_staging_files(&url, "missing")?.is_empty());
        assert!(local_staging_files("memory://", "tenant-a")?.is_empty());
        assert!(local_staging_files(&url, "../etc").is_err());
        Ok(())
    }
}
