//! The backup object store, opened from `BACKUP_STORE_URL` the way the worker
//! opens it, so keys recorded in `backups` resolve to the same objects.

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, WriteMultipart};
use tokio::io::AsyncReadExt as _;

use crate::error::AppError;

const PART: usize = 8 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct BackupObjects {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

impl BackupObjects {
    /// `file:///dir` (created if missing) or `s3://bucket/prefix` (feature `s3`).
    pub fn open(url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| e.to_string())?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|()| "file:// needs an absolute path".to_owned())?;
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| e.to_string())?
                    .with_automatic_cleanup(true);
                Ok(Self {
                    store: Arc::new(local),
                    prefix: ObjectPath::default(),
                })
            }
            "s3" => Self::s3(url, &parsed),
            other => Err(format!("unsupported scheme {other:?}")),
        }
    }

    #[cfg(feature = "s3")]
    fn s3(url: &str, parsed: &url::Url) -> Result<Self, String> {
        let store = object_store::aws::AmazonS3Builder::from_env()
            .with_url(url)
            .build()
            .map_err(|e| e.to_string())?;
        let prefix =
            ObjectPath::parse(parsed.path().trim_matches('/')).map_err(|e| e.to_string())?;
        Ok(Self {
            store: Arc::new(store),
            prefix,
        })
    }

    #[cfg(not(feature = "s3"))]
    fn s3(_url: &str, _parsed: &url::Url) -> Result<Self, String> {
        Err("s3:// needs the portal built with the `s3` feature".to_owned())
    }

    fn path(&self, key: &str) -> Result<ObjectPath, AppError> {
        let key_path = ObjectPath::parse(key)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("bad object key: {e}")))?;
        if key.is_empty() || key_path.parts().any(|p| p.as_ref() == "..") {
            return Err(AppError::Internal(anyhow::anyhow!("bad object key")));
        }
        Ok(self.prefix.parts().chain(key_path.parts()).collect())
    }

    /// The object's size and its bytes as a stream; 404 when it is gone.
    pub async fn open_stream(
        &self,
        key: &str,
    ) -> Result<
        (
            u64,
            impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
        ),
        AppError,
    > {
        let result = match self.store.get(&self.path(key)?).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Err(AppError::NotFound),
            Err(err) => return Err(AppError::Internal(err.into())),
        };
        let size = result.meta.size;
        let stream = result
            .into_stream()
            .map(|chunk| chunk.map_err(std::io::Error::other));
        Ok((size, stream))
    }

    /// Uploads a local file as `key`, in parts.
    pub async fn put_file(&self, key: &str, source: &std::path::Path) -> Result<(), AppError> {
        let internal = |e: object_store::Error| AppError::Internal(e.into());
        let upload = self
            .store
            .put_multipart(&self.path(key)?)
            .await
            .map_err(internal)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut file = tokio::fs::File::open(source)
            .await
            .map_err(|e| AppError::Internal(e.into()))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match file.read(&mut buf).await {
                Ok(n) => n,
                Err(err) => {
                    let _ = writer.abort().await;
                    return Err(AppError::Internal(err.into()));
                }
            };
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(4).await.map_err(internal)?;
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(internal)?;
        Ok(())
    }
}
