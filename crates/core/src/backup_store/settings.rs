//! `BACKUP_STORE_URL`, `BACKUP_REPLICA_URL`, `BACKUP_ENCRYPTION_KEY` and the
//! S3 client settings, validated once at start-up: a bad value is one
//! `config error: VAR: ...` line and exit 2, like every other variable.

use std::fmt;

use secrecy::{ExposeSecret as _, SecretBox};
use sha2::{Digest as _, Sha256};
use url::Url;

use super::s3::S3Options;
use crate::config::{ConfigError, Env};

pub const DEFAULT_BACKUP_STORE_URL: &str = "file:///var/lib/odoo-saas/backups";
const STORE_SHAPE: &str = "file:///absolute/dir or s3://bucket/prefix";

/// Which of the two stores an object is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreRole {
    Primary,
    Replica,
}

impl StoreRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreRole::Primary => "primary",
            StoreRole::Replica => "replica",
        }
    }

    /// The variable that names the store.
    pub fn var(self) -> &'static str {
        match self {
            StoreRole::Primary => "BACKUP_STORE_URL",
            StoreRole::Replica => "BACKUP_REPLICA_URL",
        }
    }
}

/// The 32-byte key of client-side backup encryption (`BACKUP_ENCRYPTION_KEY`,
/// 64 hex digits), never printed.
#[derive(Clone)]
pub struct EncryptionKey(std::sync::Arc<SecretBox<[u8; 32]>>);

impl EncryptionKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(std::sync::Arc::new(SecretBox::new(Box::new(bytes))))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }

    /// Names the key in each encrypted object's header without revealing
    /// it: the first 8 bytes of SHA-256 over a label and the key.
    pub(crate) fn id(&self) -> [u8; 8] {
        let digest = Sha256::new()
            .chain_update(b"odoo-saas backup key id")
            .chain_update(self.bytes())
            .finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

/// Everything needed to open the backup stores.
#[derive(Debug, Clone)]
pub struct BackupStoreSettings {
    /// `BACKUP_STORE_URL`.
    pub primary: String,
    /// `BACKUP_REPLICA_URL`: every new backup is copied there too.
    pub replica: Option<String>,
    pub s3: S3Options,
    /// `BACKUP_ENCRYPTION_KEY`: objects written are encrypted with it.
    pub encryption: Option<EncryptionKey>,
}

impl BackupStoreSettings {
    /// A primary store alone, with default S3 settings (tests, tools).
    pub fn only(primary: impl Into<String>) -> Self {
        Self {
            primary: primary.into(),
            replica: None,
            s3: S3Options::default(),
            encryption: None,
        }
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let s3 = S3Options::from_env(env)?;
        let primary = store_url(env, StoreRole::Primary)?
            .unwrap_or_else(|| DEFAULT_BACKUP_STORE_URL.to_owned());
        let replica = store_url(env, StoreRole::Replica)?;
        if replica.as_deref() == Some(primary.as_str()) {
            return Err(ConfigError {
                var: "BACKUP_REPLICA_URL",
                expected: "a store other than BACKUP_STORE_URL".to_owned(),
                got: replica,
            });
        }
        let settings = Self {
            primary,
            replica,
            s3,
            encryption: encryption_key(env)?,
        };
        // An S3 client that cannot be built with these settings fails here,
        // not at the first backup. (A local directory is made, or found
        // missing, by the service that opens it.)
        for role in [StoreRole::Primary, StoreRole::Replica] {
            if let Some(url) = settings.url(role).filter(|url| url.starts_with("s3:")) {
                super::open(url, &settings.s3).map_err(|reason| ConfigError {
                    var: role.var(),
                    expected: format!("{STORE_SHAPE} that can be opened ({reason})"),
                    got: Some(url.to_owned()),
                })?;
            }
        }
        Ok(settings)
    }

    pub fn url(&self, role: StoreRole) -> Option<&str> {
        match role {
            StoreRole::Primary => Some(&self.primary),
            StoreRole::Replica => self.replica.as_deref(),
        }
    }
}

/// A store URL: `file://` with an absolute path, `s3://` with a bucket, or
/// `memory://` (tests).
fn store_url(env: &Env, role: StoreRole) -> Result<Option<String>, ConfigError> {
    env.parse_or(role.var(), None, STORE_SHAPE, |v| {
        let url = Url::parse(v).ok()?;
        let ok = match url.scheme() {
            "file" => url.to_file_path().is_ok(),
            "s3" => url.host_str().is_some_and(|h| !h.is_empty()) && url.query().is_none(),
            "memory" => true,
            _ => false,
        };
        ok.then(|| Some(v.to_owned()))
    })
}

fn encryption_key(env: &Env) -> Result<Option<EncryptionKey>, ConfigError> {
    let Some(raw) = env.get("BACKUP_ENCRYPTION_KEY") else {
        return Ok(None);
    };
    let mut bytes = [0u8; 32];
    match hex::decode_to_slice(raw.trim(), &mut bytes) {
        Ok(()) => Ok(Some(EncryptionKey::from_bytes(bytes))),
        Err(_) => Err(ConfigError {
            var: "BACKUP_ENCRYPTION_KEY",
            expected: "64 hex digits (32 random bytes, e.g. `openssl rand -hex 32`)".to_owned(),
            got: Some(format!("a value of {} characters", raw.chars().count())),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn defaults_and_bad_values_name_their_variable() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("file://{}/b", dir.path().display());
        let settings = BackupStoreSettings::from_env(&env(&[("BACKUP_STORE_URL", &url)]))
            .expect("valid settings");
        assert_eq!(settings.primary, url);
        assert!(settings.replica.is_none() && settings.encryption.is_none());

        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("BACKUP_STORE_URL", "ftp://x/y")], "BACKUP_STORE_URL"),
            (
                &[("BACKUP_STORE_URL", "s3:///nobucket")],
                "BACKUP_STORE_URL",
            ),
            (
                &[("BACKUP_REPLICA_URL", "file://relative")],
                "BACKUP_REPLICA_URL",
            ),
            (
                &[
                    ("BACKUP_STORE_URL", "memory://"),
                    ("BACKUP_REPLICA_URL", "memory://"),
                ],
                "BACKUP_REPLICA_URL",
            ),
            (&[("BACKUP_ENCRYPTION_KEY", "abc")], "BACKUP_ENCRYPTION_KEY"),
            (&[("S3_ENDPOINT", "not a url")], "S3_ENDPOINT"),
            (&[("S3_PATH_STYLE", "sometimes")], "S3_PATH_STYLE"),
            (&[("AWS_ACCESS_KEY_ID", "GK1")], "AWS_SECRET_ACCESS_KEY"),
            (
                &[("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")],
                "AWS_SHARED_CREDENTIALS_FILE",
            ),
        ];
        for (pairs, var) in cases {
            let mut all = vec![("BACKUP_STORE_URL", url.as_str())];
            all.extend_from_slice(pairs);
            let err = BackupStoreSettings::from_env(&env(&all)).expect_err("refused");
            assert_eq!(err.var, *var, "{pairs:?}: {err}");
        }
        let err = BackupStoreSettings::from_env(&env(&[
            ("BACKUP_STORE_URL", &url),
            ("BACKUP_ENCRYPTION_KEY", "zz"),
        ]))
        .expect_err("refused");
        assert!(
            !err.to_string().contains("zz"),
            "a key is never echoed: {err}"
        );
    }

    #[test]
    fn s3_urls_with_an_endpoint_and_a_key() {
        let key = "ab".repeat(32);
        let settings = BackupStoreSettings::from_env(&env(&[
            ("BACKUP_STORE_URL", "s3://backups/odoo-saas"),
            ("S3_ENDPOINT", "http://127.0.0.1:3900"),
            ("S3_REGION", "garage"),
            ("AWS_ACCESS_KEY_ID", "GKexample"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("BACKUP_ENCRYPTION_KEY", &key),
        ]))
        .expect("valid settings");
        assert!(
            settings.s3.path_style,
            "an endpoint means path-style by default"
        );
        assert_eq!(settings.s3.region, "garage");
        assert!(settings.encryption.is_some());
        assert!(!format!("{settings:?}").contains("secret"), "{settings:?}");
    }
}
