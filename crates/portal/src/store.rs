//! The backup stores, opened from the same settings as the worker's
//! (`BACKUP_STORE_URL`, `BACKUP_REPLICA_URL`, S3, `BACKUP_ENCRYPTION_KEY`),
//! so keys recorded in `backups` resolve to the same objects. A customer
//! always gets the plain Odoo zip back, checked against its SHA-256.

use bytes::Bytes;
use futures::Stream;
use saas_core::backup_store::{BackupCopies, BackupStoreSettings, ReadError};

use crate::error::AppError;

#[derive(Clone, Debug)]
pub struct BackupObjects {
    copies: BackupCopies,
}

impl BackupObjects {
    pub fn open(settings: &BackupStoreSettings) -> Result<Self, String> {
        Ok(Self {
            copies: BackupCopies::open(settings)?,
        })
    }

    pub fn copies(&self) -> &BackupCopies {
        &self.copies
    }

    /// The plain zip of `key` as a stream that fails unless its SHA-256 is
    /// `sha256`; 404 when no store has it.
    pub async fn open_stream(
        &self,
        key: &str,
        sha256: &str,
    ) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, AppError> {
        match self.copies.read_plain(key, sha256).await {
            Ok((_, stream)) => Ok(stream),
            Err(ReadError::NotFound) => Err(AppError::NotFound),
            Err(err) => Err(AppError::Internal(err.into())),
        }
    }

    /// Stores an uploaded zip as `key`, in parts (encrypted when a key is set).
    pub async fn put_file(&self, key: &str, source: &std::path::Path) -> Result<(), AppError> {
        self.copies
            .put_file(key, source)
            .await
            .map(|_| ())
            .map_err(|reason| AppError::Internal(anyhow::anyhow!("storing the upload: {reason}")))
    }
}
