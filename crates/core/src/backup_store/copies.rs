//! What admin and portal do with the stores: stream a backup back as the
//! plain Odoo zip (from the primary, or the replica when the primary has no
//! copy), checked against its recorded SHA-256, and store a customer's
//! upload (encrypted when a key is set).

use std::io::{self, Read as _, Write};
use std::path::Path;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use object_store::{ObjectStoreExt as _, WriteMultipart};
use tokio::sync::mpsc;

use super::crypt::{EncryptingWriter, decrypt_stream};
use super::open::{OpenedStore, open};
use super::settings::{BackupStoreSettings, EncryptionKey, StoreRole};
use super::verify::verify_sha256;

const PART: usize = 8 << 20;
const CHUNK: usize = 1 << 20;

/// The stores of one deployment, opened.
#[derive(Clone, Debug)]
pub struct BackupCopies {
    pub primary: OpenedStore,
    pub replica: Option<OpenedStore>,
    pub encryption: Option<EncryptionKey>,
}

/// Why a backup could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no store has a copy of the backup")]
    NotFound,
    #[error("bad object key {0:?}")]
    BadKey(String),
    #[error(transparent)]
    Store(#[from] object_store::Error),
}

impl BackupCopies {
    pub fn open(settings: &BackupStoreSettings) -> Result<Self, String> {
        let primary = open(&settings.primary, &settings.s3)
            .map_err(|reason| format!("BACKUP_STORE_URL: {reason}"))?;
        let replica = match &settings.replica {
            Some(url) => Some(
                open(url, &settings.s3)
                    .map_err(|reason| format!("BACKUP_REPLICA_URL: {reason}"))?,
            ),
            None => None,
        };
        Ok(Self {
            primary,
            replica,
            encryption: settings.encryption.clone(),
        })
    }

    /// The stores, for [`super::watch_readiness`].
    pub fn for_readiness(&self) -> Vec<(StoreRole, OpenedStore)> {
        std::iter::once((StoreRole::Primary, self.primary.clone()))
            .chain(self.replica.clone().map(|r| (StoreRole::Replica, r)))
            .collect()
    }

    /// The plain zip of `key` as a stream that ends in an error unless its
    /// SHA-256 is `sha256`; from the primary, else from the replica.
    pub async fn read_plain(
        &self,
        key: &str,
        sha256: &str,
    ) -> Result<
        (
            StoreRole,
            impl Stream<Item = io::Result<Bytes>> + Send + 'static,
        ),
        ReadError,
    > {
        let stores = std::iter::once((StoreRole::Primary, &self.primary))
            .chain(self.replica.as_ref().map(|r| (StoreRole::Replica, r)));
        for (role, store) in stores {
            let path = store
                .path(key)
                .ok_or_else(|| ReadError::BadKey(key.to_owned()))?;
            match store.store.get(&path).await {
                Ok(object) => {
                    let raw = object.into_stream().map(|c| c.map_err(io::Error::other));
                    let plain = decrypt_stream(self.encryption.clone(), raw);
                    return Ok((role, verify_sha256(plain, sha256.to_owned())));
                }
                Err(object_store::Error::NotFound { .. }) => {
                    tracing::warn!(store = role.as_str(), "a backup's copy is missing");
                }
                Err(err) => return Err(err.into()),
            }
        }
        Err(ReadError::NotFound)
    }

    /// Stores the plain zip at `source` as `key` in the primary store, in
    /// parts, encrypted when a key is set; an interrupted upload is aborted.
    pub async fn put_file(&self, key: &str, source: &Path) -> Result<u64, String> {
        let path = self
            .primary
            .path(key)
            .ok_or_else(|| format!("bad object key {key:?}"))?;
        let upload = self
            .primary
            .store
            .put_multipart(&path)
            .await
            .map_err(|e| crate::error_chain::chain(&e))?;
        let mut upload = WriteMultipart::new_with_chunk_size(upload, PART);
        let (tx, mut rx) = mpsc::channel::<Bytes>(2);
        let source = source.to_path_buf();
        let key_for_writer = self.encryption.clone();
        let producer = tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut file = std::fs::File::open(&source)?;
            let channel = ChannelWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            };
            match key_for_writer {
                Some(key) => {
                    let mut sealed = EncryptingWriter::new(&key, channel);
                    copy_all(&mut file, &mut sealed)?;
                    sealed.finish()?.flush()
                }
                None => {
                    let mut channel = channel;
                    copy_all(&mut file, &mut channel)?;
                    channel.flush()
                }
            }
        });
        let mut size = 0u64;
        let mut failed = None;
        while let Some(chunk) = rx.recv().await {
            size += chunk.len() as u64;
            if let Err(err) = upload.wait_for_capacity(2).await {
                failed = Some(crate::error_chain::chain(&err));
                break;
            }
            upload.put(chunk);
        }
        drop(rx);
        let produced = match producer.await {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(join) => Some(join.to_string()),
        };
        if let Some(reason) = produced.or(failed) {
            let _ = upload.abort().await;
            return Err(reason);
        }
        upload
            .finish()
            .await
            .map_err(|e| crate::error_chain::chain(&e))?;
        Ok(size)
    }
}

fn copy_all(from: &mut std::fs::File, to: &mut impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}

struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Bytes::from(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt as _;
    use sha2::{Digest as _, Sha256};

    #[tokio::test]
    async fn uploads_read_back_plain_from_the_primary_or_else_the_replica() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = BackupStoreSettings::only(format!("file://{}/p", dir.path().display()));
        settings.replica = Some(format!("file://{}/r", dir.path().display()));
        settings.encryption = Some(EncryptionKey::from_bytes([3u8; 32]));
        let copies = BackupCopies::open(&settings).expect("opened");
        let plain: Vec<u8> = (0..(2 << 20) + 5).map(|i| (i % 249) as u8).collect();
        let source = dir.path().join("in.zip");
        std::fs::write(&source, &plain).expect("written");
        let sha = hex::encode(Sha256::digest(&plain));
        copies
            .put_file("db/up.zip", &source)
            .await
            .expect("uploaded");
        let stored = std::fs::read(dir.path().join("p/db/up.zip")).expect("stored");
        assert_ne!(stored, plain, "encrypted at rest");

        let (role, stream) = copies.read_plain("db/up.zip", &sha).await.expect("read");
        assert_eq!(role, StoreRole::Primary);
        let back: Vec<Bytes> = stream.try_collect().await.expect("verified");
        assert_eq!(back.concat(), plain);

        // Only the replica has it.
        std::fs::create_dir_all(dir.path().join("r/db")).expect("dir");
        std::fs::rename(
            dir.path().join("p/db/up.zip"),
            dir.path().join("r/db/up.zip"),
        )
        .expect("moved");
        let (role, stream) = copies.read_plain("db/up.zip", &sha).await.expect("read");
        assert_eq!(role, StoreRole::Replica);
        let back: Vec<Bytes> = stream.try_collect().await.expect("verified");
        assert_eq!(back.concat(), plain);

        let (_, stream) = copies
            .read_plain("db/up.zip", &"0".repeat(64))
            .await
            .expect("read");
        let read: Result<Vec<Bytes>, _> = stream.try_collect().await;
        assert!(read.is_err(), "a wrong digest fails the stream");
        assert!(matches!(
            copies.read_plain("db/none.zip", &sha).await,
            Err(ReadError::NotFound)
        ));
    }
}
