//! PostgreSQL's SCRAM-SHA-256 password verifier, computed here so that
//! `CREATE ROLE ... PASSWORD` never carries a password in clear (a server
//! logging DDL would otherwise write it to its log).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

/// PostgreSQL's default iteration count (`scram_iterations`).
const ITERATIONS: u32 = 4096;

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` for `password`
/// with a random salt.
pub(crate) fn scram_verifier(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    verifier_with(password, &salt, ITERATIONS)
}

fn verifier_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let client_key = hmac_sha256(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac_sha256(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail here.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_what_postgres_stores() -> anyhow::Result<()> {
        // PostgreSQL 15.20: CREATE ROLE r PASSWORD 'correct horse battery staple'
        let stored = "SCRAM-SHA-256$4096:6lnJ0xhhkYjxNX7qqzsRBg==$EzVy6QhiwtoZxcd71kB6kC8DFDj6tiTCJx6pLDeKe/s=:wQ5pnI0whIw+10/XIJ6TRJIs0Ac+lmvvwckR0JCfBgM=";
        let salt = STANDARD.decode("6lnJ0xhhkYjxNX7qqzsRBg==")?;
        assert_eq!(
            verifier_with("correct horse battery staple", &salt, 4096),
            stored
        );
        assert_ne!(scram_verifier("x"), scram_verifier("x"), "random salt");
        Ok(())
    }
}
