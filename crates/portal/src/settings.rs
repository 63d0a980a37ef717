//! The portal's own settings, read once at start-up with the same one-line
//! `config error: VAR: ...` failures as the shared configuration.

use std::time::Duration;

use saas_core::Env;
use saas_core::config::ConfigError;
use secrecy::SecretString;
use url::Url;

/// Settings only the portal reads.
#[derive(Debug, Clone)]
pub struct PortalSettings {
    /// `smtp://user:pass@host:587` (STARTTLS when offered), `smtps://...:465`;
    /// `None` keeps every message in the email outbox.
    pub smtp_url: Option<SecretString>,
    pub smtp_from: String,
    /// Largest backup zip a customer may upload.
    pub max_upload_bytes: u64,
    /// How long an upload request may take (`UPLOAD_TIMEOUT_SECS`), instead
    /// of the request timeout every other route has.
    pub upload_timeout: Duration,
    /// The backup stores (`BACKUP_STORE_URL`, `BACKUP_REPLICA_URL`, S3,
    /// `BACKUP_ENCRYPTION_KEY`), as the worker reads them.
    pub backup: saas_core::backup_store::BackupStoreSettings,
    pub session_idle: Duration,
    pub session_absolute: Duration,
    /// `PUBLIC_IPS`: the addresses customers may point their own domains
    /// at instead of a CNAME (the worker accepts the same ones).
    pub public_ips: Vec<std::net::IpAddr>,
}

pub use saas_core::backup_store::DEFAULT_BACKUP_STORE_URL;

impl PortalSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let smtp_url = env.parse_or(
            "SMTP_URL",
            None,
            "smtp://user:password@host:port or smtps://..., or empty to keep mail in the outbox",
            |v| {
                Url::parse(v)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "smtp" | "smtps") && u.host_str().is_some())
                    .map(|_| Some(SecretString::from(v.to_owned())))
            },
        );
        // Never echo an SMTP URL: it may hold a password.
        let smtp_url = smtp_url.map_err(|err| ConfigError {
            got: err.got.map(|raw| saas_core::config::redact_url(&raw)),
            ..err
        })?;
        let smtp_from = env.parse_or(
            "SMTP_FROM",
            "noreply@localhost".to_owned(),
            "an email address such as noreply@saas.example.com",
            |v| {
                let (local, domain) = v.rsplit_once('@')?;
                (!local.is_empty() && !domain.is_empty() && !v.contains(char::is_whitespace))
                    .then(|| v.to_owned())
            },
        )?;
        let max_upload_mb = env.parse_or(
            "MAX_UPLOAD_MB",
            512u64,
            "a whole number of megabytes from 1 to 102400",
            |v| v.parse::<u64>().ok().filter(|n| (1..=102_400).contains(n)),
        )?;
        let backup = saas_core::backup_store::BackupStoreSettings::from_env(env)?;
        let upload_timeout = env.seconds("UPLOAD_TIMEOUT_SECS", 3600, 10..=86_400)?;
        let public_ips = saas_core::domain_settings::public_ips(env)?;
        Ok(Self {
            public_ips,
            upload_timeout,
            smtp_url,
            smtp_from,
            max_upload_bytes: max_upload_mb * 1024 * 1024,
            backup,
            session_idle: Duration::from_secs(2 * 3600),
            session_absolute: Duration::from_secs(24 * 3600),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() -> Result<(), ConfigError> {
        let settings = PortalSettings::from_env(&Env::from_pairs([("SMTP_URL", "")]))?;
        assert!(settings.smtp_url.is_none());
        assert_eq!(settings.max_upload_bytes, 512 * 1024 * 1024);
        let Err(err) = PortalSettings::from_env(&Env::from_pairs([("MAX_UPLOAD_MB", "lots")]))
        else {
            panic!("accepted MAX_UPLOAD_MB=lots");
        };
        assert_eq!(err.var, "MAX_UPLOAD_MB");
        let Err(err) =
            PortalSettings::from_env(&Env::from_pairs([("SMTP_URL", "http://u:hunter2@x")]))
        else {
            panic!("accepted an http SMTP_URL");
        };
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let Err(err) =
            PortalSettings::from_env(&Env::from_pairs([("BACKUP_STORE_URL", "ftp://x/y")]))
        else {
            panic!("accepted ftp://");
        };
        assert_eq!(err.var, "BACKUP_STORE_URL");
        Ok(())
    }
}
