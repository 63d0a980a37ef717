//! Where backups live, as every service that touches them opens it: a
//! primary store (`BACKUP_STORE_URL`: `file:///dir` or `s3://bucket/prefix`),
//! an optional replica (`BACKUP_REPLICA_URL`), the S3 client settings both
//! share, and the optional client-side encryption key.
//!
//! Admin and portal stream downloads from these stores and the worker writes
//! them, so all three read one [`BackupStoreSettings`] and open stores with
//! [`open`]: a key recorded in `backups` names the same object everywhere.

mod copies;
mod crypt;
mod open;
mod s3;
mod settings;
mod verify;

pub use copies::{BackupCopies, ReadError};
pub use crypt::{
    CHUNK_PLAIN, DecryptError, DecryptingStream, EncryptingWriter, FORMAT_MAGIC, decrypt_stream,
    encrypted_size,
};
pub use open::{OpenedStore, S3Client, check_answers, open, watch_readiness};
pub use s3::{IncompleteUpload, S3Options};
pub use settings::{BackupStoreSettings, DEFAULT_BACKUP_STORE_URL, EncryptionKey, StoreRole};
pub use verify::{Sha256Mismatch, verify_sha256};
