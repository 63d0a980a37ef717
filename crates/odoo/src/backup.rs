//! Backups: an Odoo-compatible zip (`manifest.json`, `dump.sql`, `filestore/...`)
//! written on a blocking thread straight from `pg_dump` and the filestore into a
//! bounded channel, and from there into a multipart upload. Memory stays flat: a
//! few 1 MiB chunks in the channel plus the parts in flight.

use std::collections::BTreeMap;
use std::io::{self, Write as _};
use std::process::{Command, Stdio};

use bytes::Bytes;
use object_store::{ObjectStoreExt as _, WriteMultipart};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;

use crate::error::{OdooError, Result};
use crate::filestore::list_files;
use crate::pgtools::{client_for, drain_stderr, server_major, server_version};
use crate::server::OdooServer;
use crate::store::BackupStore;
use crate::templates::installed_modules_with_versions;

#[cfg(test)]
const CHUNK: usize = 1 << 20;
/// Bytes per multipart part (S3 wants at least 5 MiB in every part but the last).
pub const PART: usize = 8 << 20;
const PARTS_IN_FLIGHT: usize = 2;

/// Odoo's `manifest.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub odoo_dump: String,
    pub db_name: String,
    pub version: String,
    pub version_info: Vec<serde_json::Value>,
    pub major_version: String,
    pub pg_version: String,
    pub modules: BTreeMap<String, String>,
}

/// A finished backup.
#[derive(Clone, Debug)]
pub struct BackupInfo {
    pub key: String,
    pub size_bytes: u64,
    /// Hex SHA-256 of the whole zip as stored.
    pub sha256: String,
    pub manifest: Manifest,
}

/// A key for a new backup of `db`: `<db>/<UTC timestamp>-<random>.zip`.
pub fn backup_key(db: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{db}/{}-{}.zip",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &id[..8]
    )
}

/// Backs up database `db` and its filestore to `store` under `key`. When the
/// cluster has no connection slot for pg_dump (or any session of the backup),
/// the backup starts again after a pause: a failed attempt leaves no object.
#[tracing::instrument(skip_all)]
pub async fn backup_tenant(
    server: &OdooServer,
    db: &str,
    store: &BackupStore,
    key: &str,
) -> Result<BackupInfo> {
    crate::too_many_clients::retry_too_many_clients("backup", server.slot_wait, || {
        backup_once(server, db, store, key)
    })
    .await
}

async fn backup_once(
    server: &OdooServer,
    db: &str,
    store: &BackupStore,
    key: &str,
) -> Result<BackupInfo> {
    let mut admin = server.connect_admin().await?;
    if crate::provision::database_owner(&mut admin, db)
        .await?
        .is_none()
    {
        return Err(OdooError::DatabaseMissing(db.to_owned()));
    }
    let major = server_major(&mut admin).await?;
    let pg_dump = client_for("pg_dump", major).await?;
    let manifest = manifest(server, db, &server_version(&mut admin).await?).await?;
    let manifest_json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| OdooError::invalid("manifest", e.to_string()))?;

    let mut env = server.libpq_env(db)?;
    // Counted as the platform's in the worker's connection metrics.
    env.push(("PGAPPNAME", "saas-odoo-backup".to_owned()));
    let filestore = server.filestore_dir(db)?;
    let plain = store
        .write_with(key, move |out| {
            let mut zip = zip::ZipWriter::new_stream(out).set_auto_large_file();
            let deflated =
                SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
            zip.start_file("manifest.json", deflated)?;
            zip.write_all(&manifest_json)
                .map_err(|e| OdooError::io("manifest.json", e))?;

            zip.start_file("dump.sql", deflated.large_file(true))?;
            // pg_dump runs as the platform's superuser inside a database a
            // customer may have filled: it stays so, because pg_dump reads
            // catalogs with qualified names under an empty search_path and copies
            // tables with COPY, which fires no trigger, rule or view (row security
            // is off for it), so none of the customer's code runs. The manifest's
            // module list above is read through a guest instead.
            let mut child = Command::new(&pg_dump)
                .args(["--no-owner", "--format=plain"])
                .envs(env)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| OdooError::io(&pg_dump, e))?;
            let stderr = drain_stderr(&mut child);
            let copied = match child.stdout.take() {
                Some(mut out) => io::copy(&mut out, &mut zip),
                None => Err(io::Error::other("no stdout")),
            };
            if copied.is_err() {
                let _ = child.kill();
            }
            let status = child.wait().map_err(|e| OdooError::io(&pg_dump, e))?;
            let stderr = stderr.join().unwrap_or_default();
            copied.map_err(|e| OdooError::io("dump.sql", e))?;
            if !status.success() {
                return Err(OdooError::ToolFailed {
                    tool: "pg_dump",
                    status: status.to_string(),
                    stderr,
                });
            }

            for (relative, path) in list_files(&filestore)? {
                zip.start_file(format!("filestore/{relative}"), deflated.large_file(true))?;
                let mut file = std::fs::File::open(&path).map_err(|e| OdooError::io(&path, e))?;
                io::copy(&mut file, &mut zip).map_err(|e| OdooError::io(&path, e))?;
            }
            zip.finish()?;
            Ok(())
        })
        .await?;
    let size_bytes = plain.size;
    let sha256 = plain.sha256;
    tracing::info!(size_bytes, "backup stored");
    Ok(BackupInfo {
        key: key.to_owned(),
        size_bytes,
        sha256,
        manifest,
    })
}

/// Uploads the chunks `producer` sends on `rx` as object `key`, in parts of
/// [`PART`], at most [`PARTS_IN_FLIGHT`] at a time; returns the object's size.
/// The upload is completed only when the producer succeeded and every part
/// was stored, and aborted otherwise: no object, partial or whole, is left
/// under `key`. (Should the abort itself fail, the store is unreachable: the
/// worker's sweep aborts the upload later.)
pub(crate) async fn upload_stream(
    store: &BackupStore,
    key: &str,
    mut rx: mpsc::Receiver<Bytes>,
    producer: tokio::task::JoinHandle<Result<()>>,
) -> Result<u64> {
    let path = store.path(key)?;
    let upload = match store.inner().put_multipart(&path).await {
        Ok(upload) => upload,
        Err(e) => {
            drop(rx);
            let _ = producer.await;
            return Err(e.into());
        }
    };
    let mut upload = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut size = 0u64;
    let mut failed = None;
    while let Some(chunk) = rx.recv().await {
        size += chunk.len() as u64;
        if let Err(e) = upload.wait_for_capacity(PARTS_IN_FLIGHT).await {
            failed = Some(OdooError::from(e));
            break;
        }
        upload.put(chunk);
    }
    drop(rx);
    let produced = producer.await.map_err(OdooError::from).and_then(|r| r);
    // The store's own error says more than the producer's "upload stopped".
    match (produced, failed) {
        (_, Some(e)) | (Err(e), None) => {
            if let Err(abort) = upload.abort().await {
                tracing::warn!(error = %saas_core::error_chain::Chain(&abort), "aborting the interrupted upload failed; the sweep aborts it later");
            }
            Err(e)
        }
        (Ok(()), None) => {
            upload.finish().await?;
            Ok(size)
        }
    }
}

async fn manifest(server: &OdooServer, db: &str, pg_version: &str) -> Result<Manifest> {
    let modules: BTreeMap<String, String> = installed_modules_with_versions(server, db)
        .await?
        .into_iter()
        .collect();
    // Module versions are `<odoo major>.<module version>`, e.g. base `18.0.1.3`.
    let major_version = modules
        .get("base")
        .map(|v| v.split('.').take(2).collect::<Vec<_>>().join("."))
        .unwrap_or_default();
    let version_info = major_version
        .split('.')
        .filter_map(|p| p.parse::<u64>().ok())
        .map(serde_json::Value::from)
        .chain([
            serde_json::Value::from(0),
            serde_json::Value::from("final"),
            serde_json::Value::from(0),
            serde_json::Value::from(""),
        ])
        .collect();
    Ok(Manifest {
        odoo_dump: "1".to_owned(),
        db_name: db.to_owned(),
        version: major_version.clone(),
        version_info,
        major_version,
        pg_version: pg_version.to_owned(),
        modules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_producer_leaves_no_object() -> anyhow::Result<()> {
        let store = BackupStore::from_url("memory://")?;
        let (tx, rx) = mpsc::channel(2);
        let producer = tokio::spawn(async move {
            let _ = tx.send(Bytes::from(vec![1u8; 3 * CHUNK])).await;
            Err(OdooError::invalid("test", "pg_dump died"))
        });
        let result = upload_stream(&store, "t/x.zip", rx, producer).await;
        assert!(
            matches!(result, Err(OdooError::Invalid { .. })),
            "{result:?}"
        );
        assert!(store.size("t/x.zip").await.is_err(), "no partial object");

        let (tx, rx) = mpsc::channel(2);
        let producer = tokio::spawn(async move {
            for _ in 0..3 {
                let _ = tx.send(Bytes::from(vec![7u8; CHUNK])).await;
            }
            Ok(())
        });
        let size = upload_stream(&store, "t/y.zip", rx, producer).await?;
        assert_eq!(size, 3 * CHUNK as u64);
        assert_eq!(store.size("t/y.zip").await?, size);
        Ok(())
    }

    #[test]
    fn keys_are_unique_and_under_the_database() {
        let a = backup_key("acme");
        assert!(a.starts_with("acme/") && a.ends_with(".zip"));
        assert_ne!(a, backup_key("acme"));
    }
}
