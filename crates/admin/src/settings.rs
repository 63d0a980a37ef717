//! Settings only admin reads, validated once at start-up like the shared
//! configuration: a bad value is one `config error: VAR: ...` line, exit 2.

use std::time::Duration;

use saas_core::Env;
use saas_core::config::{AppEnv, ConfigError, EXAMPLE_SECRET_MARKER};
use secrecy::SecretString;

/// Idle timeout of an operator's session: renewed by every request.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Absolute lifetime of a session, whatever its use.
pub const SESSION_ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);

#[derive(Clone)]
pub struct AdminSettings {
    /// The first owner, created at start when no operator exists.
    pub bootstrap: Option<(String, SecretString)>,
    /// What Alertmanager sends as `Authorization: Bearer ...`; `None` refuses
    /// every alert.
    pub alert_webhook_token: Option<SecretString>,
    /// Where the worker writes backups; admin streams downloads from it.
    pub backup_store_url: String,
    pub session_idle: Duration,
    pub session_absolute: Duration,
}

impl AdminSettings {
    pub fn from_env(env: &Env, app_env: AppEnv) -> Result<Self, ConfigError> {
        let production = app_env == AppEnv::Production;
        let email = env.parse_or(
            "ADMIN_BOOTSTRAP_EMAIL",
            None,
            "an email address such as admin@example.com",
            |v| crate::repo::operators::valid_email(v).then(|| Some(v.to_owned())),
        )?;
        let bootstrap = match email {
            None => None,
            Some(email) => {
                let password = env.required(
                    "ADMIN_BOOTSTRAP_PASSWORD",
                    "the first owner's password (at least 12 characters) when ADMIN_BOOTSTRAP_EMAIL is set",
                )?;
                if let Err(reason) = saas_core::auth::password::check_policy(password) {
                    return Err(ConfigError {
                        var: "ADMIN_BOOTSTRAP_PASSWORD",
                        expected: format!("a password that {reason}"),
                        got: Some(format!(
                            "a value of {} characters",
                            password.chars().count()
                        )),
                    });
                }
                let password = secret(
                    "ADMIN_BOOTSTRAP_PASSWORD",
                    password,
                    0,
                    production,
                    "a password of your own",
                )?;
                Some((email, password))
            }
        };
        let alert_webhook_token = match env.get("ALERT_WEBHOOK_TOKEN") {
            None => None,
            Some(token) => Some(secret(
                "ALERT_WEBHOOK_TOKEN",
                token,
                16,
                production,
                "a random string of at least 16 characters",
            )?),
        };
        let backup_store_url = env.parse_or(
            "BACKUP_STORE_URL",
            "file:///var/lib/odoo-saas/backups".to_owned(),
            "file:///absolute/dir or s3://bucket/prefix",
            |v| {
                let url = url::Url::parse(v).ok()?;
                matches!(url.scheme(), "file" | "s3").then(|| v.to_owned())
            },
        )?;
        Ok(Self {
            backup_store_url,
            bootstrap,
            alert_webhook_token,
            session_idle: SESSION_IDLE,
            session_absolute: SESSION_ABSOLUTE,
        })
    }
}

/// A secret of at least `min` characters; production refuses the example
/// value. The error never repeats the secret, only its length.
fn secret(
    var: &'static str,
    raw: &str,
    min: usize,
    production: bool,
    expected: &str,
) -> Result<SecretString, ConfigError> {
    let length = raw.chars().count();
    if length < min {
        return Err(ConfigError {
            var,
            expected: expected.to_owned(),
            got: Some(format!("a value of {length} characters")),
        });
    }
    if production && raw.contains(EXAMPLE_SECRET_MARKER) {
        return Err(ConfigError {
            var,
            expected: "a value of your own in production, not the one from .env.example".to_owned(),
            got: Some("the example value".to_owned()),
        });
    }
    Ok(SecretString::from(raw.to_owned()))
}
