//! Argon2id password hashes (PHC strings), computed on a blocking thread.

use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use super::hashing::{self, HashError};

/// The shortest password accepted for new accounts.
pub const MIN_LENGTH: usize = 12;
/// The longest password accepted (hashing cost is bounded).
pub const MAX_LENGTH: usize = 1024;

/// Passwords too common to allow, whatever their length (checked in lower case).
const COMMON: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "password1234",
    "password12345",
    "passwordpassword",
    "qwertyuiopas",
    "qwerty123456",
    "111111111111",
    "000000000000",
    "aaaaaaaaaaaa",
    "abc123456789",
    "iloveyou1234",
    "letmein12345",
    "welcome12345",
    "administrator",
    "changeme1234",
    "password123!",
    "qwertyuiop123",
    "1q2w3e4r5t6y",
    "trustno1trustno1",
    "football1234",
    "baseball1234",
    "superman1234",
    "odooodooodoo",
    "odoo12345678",
    "adminadmin12",
    "monkey123456",
    "dragon123456",
    "sunshine1234",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("must be at least {MIN_LENGTH} characters long")]
    TooShort,
    #[error("must be at most {MAX_LENGTH} characters long")]
    TooLong,
    #[error("is too common; choose one that is harder to guess")]
    Common,
}

/// Checks a new password against the policy.
pub fn check_policy(password: &str) -> Result<(), PasswordPolicyError> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(PasswordPolicyError::TooShort);
    }
    if length > MAX_LENGTH {
        return Err(PasswordPolicyError::TooLong);
    }
    let lower = password.to_lowercase();
    let one_repeated_char = lower.chars().all(|c| lower.starts_with(c));
    if one_repeated_char || COMMON.contains(&lower.as_str()) {
        return Err(PasswordPolicyError::Common);
    }
    Ok(())
}

fn hasher() -> Argon2<'static> {
    // OWASP's recommended Argon2id parameters: 19 MiB, 2 passes, 1 lane.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes through the hashing gate ([`hashing::run`]); returns a PHC string.
pub async fn hash(password: SecretString) -> Result<String, HashError> {
    hashing::run(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|err| HashError::Failed(err.to_string()))
    })
    .await?
}

/// Verifies through the hashing gate; `Ok(false)` for a wrong password or a
/// malformed hash, `Err(Busy)` when no slot was free in time.
pub async fn verify(password: SecretString, phc: String) -> Result<bool, HashError> {
    hashing::run(move || {
        PasswordHash::new(&phc)
            .map(|parsed| {
                hasher()
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
}

/// A hash of a random password, verified against when an account does not
/// exist, so a login for an unknown address costs as long as a real one.
/// Computed once; a failure (the gate was busy) is not remembered.
pub async fn dummy_hash() -> Result<String, HashError> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_try_init(|| hash(SecretString::from(super::random_token(16))))
        .await
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_are_salted() -> Result<(), HashError> {
        let a = hash(SecretString::from("correct horse battery")).await?;
        let b = hash(SecretString::from("correct horse battery")).await?;
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_ne!(a, b);
        assert!(verify(SecretString::from("correct horse battery"), a.clone()).await?);
        assert!(!verify(SecretString::from("wrong horse battery"), a).await?);
        assert!(!verify(SecretString::from("x"), "not a hash".to_owned()).await?);
        assert!(dummy_hash().await?.starts_with("$argon2id$"));
        Ok(())
    }

    #[test]
    fn policy() {
        assert_eq!(check_policy("short"), Err(PasswordPolicyError::TooShort));
        assert_eq!(
            check_policy("Password1234"),
            Err(PasswordPolicyError::Common)
        );
        assert_eq!(
            check_policy("zzzzzzzzzzzzzz"),
            Err(PasswordPolicyError::Common)
        );
        assert_eq!(
            check_policy(&"x".repeat(2000)),
            Err(PasswordPolicyError::TooLong)
        );
        assert!(check_policy("plum-orbit-cedar-42").is_ok());
    }
}
