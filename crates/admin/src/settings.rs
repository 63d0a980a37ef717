//! Settings only admin reads, validated once at start-up like the shared
//! configuration: a bad value is one `config error: VAR: ...` line, exit 2.

use std::time::Duration;

use saas_core::Env;
use saas_core::config::{AppEnv, ConfigError, EXAMPLE_SECRET_MARKER};
use secrecy::SecretString;

/// Default idle timeout of an operator's session (`ADMIN_SESSION_IDLE_SECS`):
/// renewed by every request.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Default absolute lifetime of a session, whatever its use
/// (`ADMIN_SESSION_ABSOLUTE_SECS`).
pub const SESSION_ABSOLUTE: Duration = Duration::from_secs(12 * 60 * 60);
/// Longest idle timeout accepted: one day.
pub const SESSION_IDLE_MAX_SECS: u64 = 24 * 60 * 60;
/// Longest absolute lifetime accepted: thirty days.
pub const SESSION_ABSOLUTE_MAX_SECS: u64 = 30 * 24 * 60 * 60;

#[derive(Clone)]
pub struct AdminSettings {
    /// The first owner, created at start when no operator exists.
    pub bootstrap: Option<(String, SecretString)>,
    /// What Alertmanager sends as `Authorization: Bearer ...`; `None` refuses
    /// every alert.
    pub alert_webhook_token: Option<SecretString>,
    /// Where the worker writes backups (primary, replica, S3 settings,
    /// encryption key); admin streams downloads from them.
    pub backup: saas_core::backup_store::BackupStoreSettings,
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
        let backup = saas_core::backup_store::BackupStoreSettings::from_env(env)?;
        let (session_idle, session_absolute) = session_timeouts(env)?;
        Ok(Self {
            backup,
            bootstrap,
            alert_webhook_token,
            session_idle,
            session_absolute,
        })
    }
}

/// `ADMIN_SESSION_IDLE_SECS` and `ADMIN_SESSION_ABSOLUTE_SECS`: whole seconds
/// within bounds, and the idle timeout no longer than the absolute lifetime.
fn session_timeouts(env: &Env) -> Result<(Duration, Duration), ConfigError> {
    let seconds = |var: &'static str, default: Duration, max: u64| {
        env.parse_or(
            var,
            default,
            &format!("a whole number of seconds from 1 to {max}"),
            |v| {
                v.parse::<u64>()
                    .ok()
                    .filter(|s| (1..=max).contains(s))
                    .map(Duration::from_secs)
            },
        )
    };
    let idle = seconds(
        "ADMIN_SESSION_IDLE_SECS",
        SESSION_IDLE,
        SESSION_IDLE_MAX_SECS,
    )?;
    let absolute = seconds(
        "ADMIN_SESSION_ABSOLUTE_SECS",
        SESSION_ABSOLUTE,
        SESSION_ABSOLUTE_MAX_SECS,
    )?;
    if idle > absolute {
        return Err(ConfigError {
            var: "ADMIN_SESSION_IDLE_SECS",
            expected: format!(
                "at most ADMIN_SESSION_ABSOLUTE_SECS ({} seconds)",
                absolute.as_secs()
            ),
            got: Some(idle.as_secs().to_string()),
        });
    }
    Ok((idle, absolute))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts(pairs: &[(&str, &str)]) -> Result<(Duration, Duration), String> {
        session_timeouts(&Env::from_pairs(pairs.iter().copied())).map_err(|e| e.to_string())
    }

    #[test]
    fn session_timeouts_default_to_30_minutes_and_12_hours() {
        assert_eq!(timeouts(&[]), Ok((SESSION_IDLE, SESSION_ABSOLUTE)));
        assert_eq!(
            timeouts(&[
                ("ADMIN_SESSION_IDLE_SECS", ""),
                ("ADMIN_SESSION_ABSOLUTE_SECS", "")
            ]),
            Ok((SESSION_IDLE, SESSION_ABSOLUTE))
        );
    }

    #[test]
    fn session_timeouts_are_read_in_seconds() {
        assert_eq!(
            timeouts(&[
                ("ADMIN_SESSION_IDLE_SECS", "600"),
                ("ADMIN_SESSION_ABSOLUTE_SECS", " 3600 ")
            ]),
            Ok((Duration::from_secs(600), Duration::from_secs(3600)))
        );
    }

    #[test]
    fn bad_session_timeouts_name_the_variable() {
        for (var, value) in [
            ("ADMIN_SESSION_IDLE_SECS", "0"),
            ("ADMIN_SESSION_IDLE_SECS", "30m"),
            ("ADMIN_SESSION_IDLE_SECS", "-5"),
            ("ADMIN_SESSION_IDLE_SECS", "86401"),
            ("ADMIN_SESSION_ABSOLUTE_SECS", "0"),
            ("ADMIN_SESSION_ABSOLUTE_SECS", "2592001"),
            ("ADMIN_SESSION_ABSOLUTE_SECS", "1e9"),
        ] {
            let error = timeouts(&[(var, value)]).err().unwrap_or_default();
            assert!(
                error.starts_with(&format!(
                    "config error: {var}: expected a whole number of seconds from 1 to "
                )),
                "{var}={value}: {error}"
            );
            assert!(error.ends_with(&format!("got {value:?}")), "{error}");
        }
    }

    #[test]
    fn idle_longer_than_absolute_is_refused() {
        let error = timeouts(&[
            ("ADMIN_SESSION_IDLE_SECS", "7200"),
            ("ADMIN_SESSION_ABSOLUTE_SECS", "3600"),
        ]);
        assert_eq!(
            error,
            Err("config error: ADMIN_SESSION_IDLE_SECS: expected at most ADMIN_SESSION_ABSOLUTE_SECS (3600 seconds), got \"7200\"".to_owned())
        );
    }
}
