//! Where backups live: an `object_store` with a key prefix, opened the way
//! admin and portal open it (`saas_core::backup_store`), plus the optional
//! client-side encryption key. Objects are written in parts from a blocking
//! producer and read back as the plain zip, checked against its SHA-256.

use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _};
use saas_core::backup_store::{
    self as core_store, BackupStoreSettings, EncryptingWriter, EncryptionKey, OpenedStore,
    S3Client, S3Options, StoreRole,
};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::mpsc;

use crate::error::{OdooError, Result};

const CHUNK: usize = 1 << 20;

/// A backup location: `file:///var/lib/odoo-saas/backups` (default kind),
/// `s3://bucket/prefix` or `memory://` (tests).
#[derive(Clone, Debug)]
pub struct BackupStore {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    s3: Option<S3Client>,
    encryption: Option<EncryptionKey>,
    role: StoreRole,
    url: String,
}

/// The plain zip an object holds: its size and SHA-256 (hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plain {
    pub size: u64,
    pub sha256: String,
}

impl BackupStore {
    /// The store a URL names, with default S3 settings and no encryption
    /// (tests, tools); a local directory is created if missing.
    pub fn from_url(url: &str) -> Result<Self> {
        Self::open(url, &S3Options::default(), None, StoreRole::Primary)
    }

    /// The primary store and, when configured, the replica.
    pub fn from_settings(settings: &BackupStoreSettings) -> Result<(Self, Option<Self>)> {
        let key = settings.encryption.clone();
        let primary = Self::open(
            &settings.primary,
            &settings.s3,
            key.clone(),
            StoreRole::Primary,
        )?;
        let replica = match &settings.replica {
            Some(url) => Some(Self::open(url, &settings.s3, key, StoreRole::Replica)?),
            None => None,
        };
        Ok((primary, replica))
    }

    pub fn open(
        url: &str,
        s3: &S3Options,
        encryption: Option<EncryptionKey>,
        role: StoreRole,
    ) -> Result<Self> {
        let OpenedStore {
            store,
            prefix,
            s3,
            url,
        } = core_store::open(url, s3).map_err(|reason| OdooError::invalid("backup URL", reason))?;
        Ok(Self {
            store,
            prefix,
            s3,
            encryption,
            role,
            url,
        })
    }

    /// A store with every key below `prefix`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath) -> Self {
        Self {
            store,
            prefix,
            s3: None,
            encryption: None,
            role: StoreRole::Primary,
            url: "memory://".to_owned(),
        }
    }

    /// The same store, writing objects encrypted with `key`.
    pub fn with_encryption(mut self, key: Option<EncryptionKey>) -> Self {
        self.encryption = key;
        self
    }

    pub fn role(&self) -> StoreRole {
        self.role
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn inner(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    pub(crate) fn s3(&self) -> Option<&S3Client> {
        self.s3.as_ref()
    }

    pub(crate) fn prefix(&self) -> &ObjectPath {
        &self.prefix
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

    /// The store as `saas_core::backup_store` knows it.
    pub fn opened(&self) -> OpenedStore {
        OpenedStore {
            store: Arc::clone(&self.store),
            prefix: self.prefix.clone(),
            s3: self.s3.clone(),
            url: self.url.clone(),
        }
    }

    /// Whether the store answers (`/readyz`).
    pub async fn check(&self) -> std::result::Result<(), String> {
        core_store::check_answers(&self.opened(), std::time::Duration::from_secs(5)).await
    }

    /// Size in bytes of the object `key` as stored.
    pub async fn size(&self, key: &str) -> Result<u64> {
        Ok(self.store.head(&self.path(key)?).await?.size)
    }

    /// Whether the object `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self.store.head(&self.path(key)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the object `key` (a missing one is fine).
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn unusable(&self, key: &str, reason: impl Into<String>) -> OdooError {
        OdooError::BackupUnusable {
            key: key.to_owned(),
            store: self.role.as_str(),
            reason: reason.into(),
        }
    }

    /// Streams the plain zip of `key` into a local file (decrypted when it
    /// was stored encrypted); with `expected`, its SHA-256 must match, or
    /// the object is [`OdooError::BackupUnusable`].
    pub async fn download_verified(
        &self,
        key: &str,
        target: &std::path::Path,
        expected: Option<&str>,
    ) -> Result<Plain> {
        let object = match self.store.get(&self.path(key)?).await {
            Ok(object) => object,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(self.unusable(key, "the object is missing"));
            }
            Err(e) => return Err(e.into()),
        };
        let raw = object.into_stream().map(|c| c.map_err(io::Error::other));
        let mut plain = core_store::decrypt_stream(self.encryption.clone(), raw);
        let mut file = tokio::fs::File::create(target)
            .await
            .map_err(|e| OdooError::io(target, e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = plain.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(err) => return Err(self.read_failed(key, err)),
            };
            hasher.update(&chunk);
            size += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| OdooError::io(target, e))?;
        }
        file.flush().await.map_err(|e| OdooError::io(target, e))?;
        let sha256 = hex::encode(hasher.finalize());
        if let Some(expected) = expected
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(self.unusable(
                key,
                format!(
                    "its SHA-256 is {sha256}, not the recorded {expected}: the copy is corrupt"
                ),
            ));
        }
        Ok(Plain { size, sha256 })
    }

    /// A read error: decryption failures make the copy unusable; transport
    /// trouble stays a storage error (retried).
    fn read_failed(&self, key: &str, err: io::Error) -> OdooError {
        let decrypt = err
            .get_ref()
            .is_some_and(|inner| inner.is::<core_store::DecryptError>());
        if decrypt {
            self.unusable(key, err.to_string())
        } else {
            OdooError::Storage(object_store::Error::Generic {
                store: "backup",
                source: Box::new(err),
            })
        }
    }

    /// Copies the object `key` as it is stored (still encrypted, if it is)
    /// into `target`, in parts; an interrupted copy is aborted.
    pub async fn copy_to(&self, target: &BackupStore, key: &str) -> Result<u64> {
        let object = self.store.get(&self.path(key)?).await?;
        let mut raw = object.into_stream();
        let (tx, rx) = mpsc::channel::<Bytes>(2);
        let pump = tokio::spawn(async move {
            while let Some(chunk) = raw.next().await {
                let chunk = chunk?;
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Ok::<(), OdooError>(())
        });
        crate::backup::upload_stream(target, key, rx, pump).await
    }

    /// Writes the object `key` from `produce` running on a blocking thread:
    /// what it writes is the plain zip, hashed here and encrypted when the
    /// store has a key. The object exists only once everything was written.
    pub async fn write_with<F>(&self, key: &str, produce: F) -> Result<Plain>
    where
        F: FnOnce(&mut dyn Write) -> Result<()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let key_for_writer = self.encryption.clone();
        let producer = tokio::task::spawn_blocking(move || -> Result<Plain> {
            let channel = ChannelWriter::new(tx);
            let sink = match key_for_writer {
                Some(key) => Sink::Sealed(EncryptingWriter::new(&key, channel)),
                None => Sink::Plain(channel),
            };
            let mut hashing = Hashing {
                inner: sink,
                hasher: Sha256::new(),
                size: 0,
            };
            produce(&mut hashing)?;
            let Hashing {
                inner,
                hasher,
                size,
            } = hashing;
            let mut channel = match inner {
                Sink::Plain(channel) => channel,
                Sink::Sealed(sealed) => sealed
                    .finish()
                    .map_err(|e| OdooError::io("backup stream", e))?,
            };
            channel
                .flush()
                .map_err(|e| OdooError::io("backup stream", e))?;
            Ok(Plain {
                size,
                sha256: hex::encode(hasher.finalize()),
            })
        });
        let (plain_tx, plain_rx) = tokio::sync::oneshot::channel();
        let producer = tokio::spawn(async move {
            let plain = producer.await??;
            let _ = plain_tx.send(plain);
            Ok(())
        });
        crate::backup::upload_stream(self, key, rx, producer).await?;
        plain_rx
            .await
            .map_err(|_| OdooError::invalid("backup stream", "the producer vanished"))
    }

    /// Uploads a local file (a plain zip) as the object `key`, in parts
    /// (imports, tests).
    pub async fn upload_file(&self, key: &str, source: &std::path::Path) -> Result<u64> {
        let path = source.to_path_buf();
        let plain = self
            .write_with(key, move |out| {
                let mut file = std::fs::File::open(&path).map_err(|e| OdooError::io(&path, e))?;
                io::copy(&mut file, out).map_err(|e| OdooError::io(&path, e))?;
                Ok(())
            })
            .await?;
        Ok(plain.size)
    }
}

/// Counts and hashes the plain bytes on their way to the sink.
struct Hashing {
    inner: Sink,
    hasher: Sha256,
    size: u64,
}

impl Write for Hashing {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hasher.update(&data[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Sink {
    Plain(ChannelWriter),
    Sealed(EncryptingWriter<ChannelWriter>),
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(data),
            Sink::Sealed(w) => w.write(data),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Sealed(w) => w.flush(),
        }
    }
}

/// `Write` half of the bridge: buffers up to 1 MiB, then hands the chunk to the
/// async uploader, blocking while the channel is full.
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn new(tx: mpsc::Sender<Bytes>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
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
        let s3 = BackupStore::from_url("s3://bucket/some/prefix")?;
        assert_eq!(s3.path("k.zip")?.to_string(), "some/prefix/k.zip");
        Ok(())
    }

    #[tokio::test]
    async fn encrypted_objects_read_back_as_the_plain_zip_and_corruption_is_named()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let key = EncryptionKey::from_bytes([9u8; 32]);
        let store = BackupStore::from_url(&format!("file://{}/s", dir.path().display()))?
            .with_encryption(Some(key));
        let plain_bytes: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 253) as u8).collect();
        let source = dir.path().join("plain.zip");
        std::fs::write(&source, &plain_bytes)?;
        store.upload_file("t/a.zip", &source).await?;
        let stored = std::fs::read(dir.path().join("s/t/a.zip"))?;
        assert_eq!(&stored[..8], saas_core::backup_store::FORMAT_MAGIC);
        assert_eq!(
            stored.len() as u64,
            saas_core::backup_store::encrypted_size(plain_bytes.len() as u64)
        );
        let sha = hex::encode(Sha256::digest(&plain_bytes));
        let target = dir.path().join("back.zip");
        let plain = store
            .download_verified("t/a.zip", &target, Some(&sha))
            .await?;
        assert_eq!(plain.size, plain_bytes.len() as u64);
        assert_eq!(std::fs::read(&target)?, plain_bytes);

        let wrong = "0".repeat(64);
        let err = store
            .download_verified("t/a.zip", &target, Some(&wrong))
            .await;
        assert!(
            matches!(err, Err(OdooError::BackupUnusable { .. })),
            "{err:?}"
        );
        let mut flipped = stored.clone();
        flipped[100] ^= 0xff;
        std::fs::write(dir.path().join("s/t/a.zip"), &flipped)?;
        let err = store
            .download_verified("t/a.zip", &target, Some(&sha))
            .await;
        assert!(
            matches!(err, Err(OdooError::BackupUnusable { .. })),
            "{err:?}"
        );
        let err = store
            .download_verified("t/missing.zip", &target, None)
            .await;
        assert!(
            matches!(err, Err(OdooError::BackupUnusable { .. })),
            "{err:?}"
        );
        Ok(())
    }
}
