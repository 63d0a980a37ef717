//! Argon2id password hashes (PHC strings), computed through the hashing
//! gate ([`hashing::run`]) in memory each hashing thread allocates once.

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

fn params() -> Params {
    // OWASP's recommended Argon2id parameters: 19 MiB, 2 passes, 1 lane.
    Params::new(19 * 1024, 2, 1, None).unwrap_or_default()
}

thread_local! {
    /// Argon2's working memory (19 MiB), allocated once per hashing thread
    /// and reused: allocating it per hash, glibc spread freed blocks over
    /// its arenas until a portal under attack held 350 MB.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs Argon2 with `params` into `out`, in this thread's working memory.
fn argon2_into(
    params: Params,
    algorithm: Algorithm,
    version: Version,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), String> {
    let blocks = params.block_count();
    if blocks > params_block_limit() {
        return Err(format!("a hash asks for {blocks} KiB of memory"));
    }
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .map_err(|err| err.to_string())
    })
}

/// The most working memory a stored hash may ask for: what new hashes use.
fn params_block_limit() -> usize {
    params().block_count()
}

fn hash_blocking(password: &[u8]) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| e.to_string())?;
    let params = params();
    let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
        argon2_into(
            params.clone(),
            Algorithm::Argon2id,
            Version::V0x13,
            password,
            salt_bytes,
            out,
        )
        .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| e.to_string())?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| e.to_string())?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

fn verify_blocking(password: &[u8], phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.salt,
        parsed.hash,
    ) else {
        return false;
    };
    let version = parsed
        .version
        .map_or(Ok(Version::V0x13), Version::try_from)
        .unwrap_or(Version::V0x13);
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let computed = Output::init_with(expected.len(), |out| {
        argon2_into(params, algorithm, version, password, salt_bytes, out)
            .map_err(|_| argon2::password_hash::Error::Crypto)
    });
    // `Output`'s equality is constant-time.
    computed.is_ok_and(|computed| computed == expected)
}

/// Hashes through the hashing gate ([`hashing::run`]); returns a PHC string.
pub async fn hash(password: SecretString) -> Result<String, HashError> {
    hashing::run(move || {
        hash_blocking(password.expose_secret().as_bytes()).map_err(HashError::Failed)
    })
    .await?
}

/// Verifies through the hashing gate; `Ok(false)` for a wrong password or a
/// malformed hash, `Err(Busy)` when no slot was free in time.
pub async fn verify(password: SecretString, phc: String) -> Result<bool, HashError> {
    hashing::run(move || verify_blocking(password.expose_secret().as_bytes(), &phc)).await
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
    fn hashes_agree_with_the_argon2_crate_both_ways() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_blocking(b"correct horse battery").unwrap_or_default();
        let parsed = PasswordHash::new(&ours);
        assert!(parsed.is_ok_and(|p| {
            Argon2::default()
                .verify_password(b"correct horse battery", &p)
                .is_ok()
        }));
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
            .hash_password(b"correct horse battery", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default();
        assert!(verify_blocking(b"correct horse battery", &theirs));
        assert!(!verify_blocking(b"correct horse batterx", &theirs));
        // A stored hash asking for more memory than ours is refused, not run.
        let greedy = theirs.replace("m=19456", "m=4000000");
        assert!(!verify_blocking(b"correct horse battery", &greedy));
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
