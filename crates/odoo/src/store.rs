//! Where backups live: an `object_store` with a key prefix, built from one URL.

use std::sync::Arc;

use futures::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use tokio::io::AsyncWriteExt as _;

use crate::error::{OdooError, Result};

/// A backup location: `file:///var/lib/odoo-saas/backups` (default kind),
/// `s3://bucket/prefix` (crate feature `s3`; credentials, region and endpoint from
/// the usual `AWS_*` variables) or `memory://` (tests).
#[derive(Clone, Debug)]
pub struct BackupStore {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

impl BackupStore {
    /// Builds the store a URL names; a local directory is created if missing.
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed =
            url::Url::parse(url).map_err(|e| OdooError::invalid("backup URL", e.to_string()))?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed.to_file_path().map_err(|()| {
                    OdooError::invalid("backup URL", "file:// needs an absolute path")
                })?;
                std::fs::create_dir_all(&dir).map_err(|e| OdooError::io(&dir, e))?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)?
                    .with_automatic_cleanup(true);
                Ok(Self::new(Arc::new(local), ObjectPath::default()))
            }
            "memory" => Ok(Self::new(
                Arc::new(object_store::memory::InMemory::new()),
                ObjectPath::default(),
            )),
            "s3" => Self::s3(url, &parsed),
            other => Err(OdooError::invalid(
                "backup URL",
                format!("unsupported scheme {other:?} (file://, s3:// or memory://)"),
            )),
        }
    }

    #[cfg(feature = "s3")]
    fn s3(url: &str, parsed: &url::Url) -> Result<Self> {
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_url(url)
            .build()?;
        let prefix = ObjectPath::parse(parsed.path().trim_matches('/'))
            .map_err(|e| OdooError::invalid("backup URL", e.to_string()))?;
        Ok(Self::new(Arc::new(store), prefix))
    }

    #[cfg(not(feature = "s3"))]
    fn s3(_url: &str, _parsed: &url::Url) -> Result<Self> {
        Err(OdooError::invalid(
            "backup URL",
            "s3:// needs saas-odoo built with the `s3` feature",
        ))
    }

    /// A store with every key below `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath) -> Self {
        Self { store, prefix }
    }

    pub(crate) fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The full object path of `key` (a relative `a/b.zip`, no `..`).
    pub(crate) fn path(&self, key: &str) -> Result<ObjectPath> {
        let key_path =
            ObjectPath::parse(key).map_err(|e| OdooError::invalid("backup key", e.to_string()))?;
        if key.is_empty() || key_path.parts().any(|p| p.as_ref() == "..") {
            return Err(OdooError::invalid("backup key", format!("{key:?}")));
        }
        Ok(self.prefix.parts().chain(key_path.parts()).collect())
    }

    /// Size in bytes of the object `key`.
    pub async fn size(&self, key: &str) -> Result<u64> {
        Ok(self.store.head(&self.path(key)?).await?.size)
    }

    /// Deletes the object `key` (a missing one is fine).
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams the object `key` into a local file.
    pub(crate) async fn download(&self, key: &str, target: &std::path::Path) -> Result<u64> {
        let mut stream = self.store.get(&self.path(key)?).await?.into_stream();
        let mut file = tokio::fs::File::create(target)
            .await
            .map_err(|e| OdooError::io(target, e))?;
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            total += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| OdooError::io(target, e))?;
        }
        file.flush().await.map_err(|e| OdooError::io(target, e))?;
        Ok(total)
    }

    /// Uploads a local file as the object `key`, in parts (imports, tests).
    pub async fn upload_file(&self, key: &str, source: &std::path::Path) -> Result<u64> {
        use tokio::io::AsyncReadExt as _;
        let mut file = tokio::fs::File::open(source)
            .await
            .map_err(|e| OdooError::io(source, e))?;
        let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(2);
        let path = source.to_path_buf();
        let reader = tokio::spawn(async move {
            loop {
                let mut buf = vec![0u8; 1 << 20];
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(|e| OdooError::io(&path, e))?;
                if n == 0 {
                    return Ok::<(), OdooError>(());
                }
                buf.truncate(n);
                if tx.send(buf.into()).await.is_err() {
                    return Ok(());
                }
            }
        });
        let (size, _) = crate::backup::upload_stream(self, key, rx, reader).await?;
        Ok(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_and_keys() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let local =
            BackupStore::from_url(&format!("file://{}/nested/backups", dir.path().display()))?;
        assert!(dir.path().join("nested/backups").is_dir(), "created");
        let source = dir.path().join("src.bin");
        std::fs::write(&source, vec![3u8; 3 << 20])?;
        assert_eq!(local.upload_file("acme/a.zip", &source).await?, 3 << 20);
        assert!(dir.path().join("nested/backups/acme/a.zip").is_file());
        assert_eq!(local.size("acme/a.zip").await?, 3 << 20);
        local.delete("acme/a.zip").await?;
        local.delete("acme/a.zip").await?;
        assert!(local.size("acme/a.zip").await.is_err());
        for bad in ["", "../x.zip", "a/../../x.zip"] {
            assert!(local.path(bad).is_err(), "{bad:?}");
        }
        assert!(BackupStore::from_url("ftp://host/x").is_err());
        assert!(BackupStore::from_url("file://relative").is_err());
        Ok(())
    }

    #[test]
    fn s3_urls_need_the_feature() {
        let s3 = BackupStore::from_url("s3://bucket/some/prefix");
        if cfg!(feature = "s3") {
            let store = s3.ok();
            assert_eq!(
                store
                    .and_then(|s| s.path("k.zip").ok())
                    .map(|p| p.to_string()),
                Some("some/prefix/k.zip".to_owned())
            );
        } else {
            assert!(matches!(s3, Err(OdooError::Invalid { .. })));
        }
    }
}
