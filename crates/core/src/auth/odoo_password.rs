//! Odoo's password format: passlib `pbkdf2_sha512`,
//! `$pbkdf2-sha512$<rounds>$<ab64 salt>$<ab64 checksum>`.
//!
//! ab64 is standard base64 with `.` in place of `+` and no padding; the salt is 16
//! random bytes and the checksum the 64-byte PBKDF2-HMAC-SHA512 output.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha512;

/// Rounds Odoo 18 uses (passlib's default for `pbkdf2_sha512` in Odoo's context).
pub const ODOO_PBKDF2_ROUNDS: u32 = 600_000;
const SALT_LEN: usize = 16;
const CHECKSUM_LEN: usize = 64;
const PREFIX: &str = "$pbkdf2-sha512$";

const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn ab64_encode(bytes: &[u8]) -> String {
    B64.encode(bytes).replace('+', ".")
}

fn ab64_decode(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.replace('.', "+")).ok()
}

/// Hashes `password` the way Odoo stores it, through the hashing gate
/// ([`super::hashing::run`]: 600,000 rounds cost about a second of CPU).
pub async fn hash_password(password: &SecretString) -> Result<String, super::hashing::HashError> {
    let password = password.clone();
    super::hashing::run(move || hash_password_blocking(&password)).await
}

/// [`hash_password`] for callers already on a blocking thread: random 16-byte salt,
/// 600,000 rounds.
pub fn hash_password_blocking(password: &SecretString) -> String {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    hash_password_with(password.expose_secret(), ODOO_PBKDF2_ROUNDS, &salt)
}

/// Deterministic hashing with a given salt and round count (blocking; for tests and
/// for callers already on a blocking thread).
pub fn hash_password_with(password: &str, rounds: u32, salt: &[u8]) -> String {
    let mut checksum = [0u8; CHECKSUM_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, rounds, &mut checksum);
    format!(
        "{PREFIX}{rounds}${}${}",
        ab64_encode(salt),
        ab64_encode(&checksum)
    )
}

/// Whether `password` matches an Odoo `pbkdf2_sha512` hash (blocking; constant-time
/// comparison). Any other or malformed format is `false`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    let Some(rest) = hash.strip_prefix(PREFIX) else {
        return false;
    };
    let mut parts = rest.split('$');
    let (Some(rounds), Some(salt), Some(checksum), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Ok(rounds), Some(salt), Some(expected)) = (
        rounds.parse::<u32>(),
        ab64_decode(salt),
        ab64_decode(checksum),
    ) else {
        return false;
    };
    if rounds == 0 || expected.len() != CHECKSUM_LEN {
        return false;
    }
    let mut actual = [0u8; CHECKSUM_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &salt, rounds, &mut actual);
    actual
        .iter()
        .zip(expected.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // Produced with python passlib 1.7.4:
    // pbkdf2_sha512.using(rounds=600000, salt=bytes(range(16))).hash('correct horse battery staple')
    const PASSLIB_600K: &str = "$pbkdf2-sha512$600000$AAECAwQFBgcICQoLDA0ODw$HPMKUYh49Erst1wODQ1poCrF.RgaU7UpIJLhCjwMu0FQip6EKIUUkNiJ4BvDKV0UdO8BuHufX3D.ExFyclsWAw";
    // pbkdf2_sha512.using(rounds=1000, salt=b'\xff'*16).hash('pässwörd')
    const PASSLIB_1K_UTF8: &str = "$pbkdf2-sha512$1000$/////////////////////w$fGnhrkugqbuYytOWwrrP8P42QAHMugvc52kvfO3kArrgs0mnnaNbCU3kVYXW92SfDb.njbEGZtnR4OFxdzu33g";
    // The admin user of crates/testkit/fixtures/odoo18/template.sql, password `admin`.
    const FIXTURE_ADMIN: &str = "$pbkdf2-sha512$600000$eQ9BCMHYm9Pau/ee03qPcQ$UEEVnYwtpQ9Zy6JIYqkSS92EQ7n1U.yzuWOAeeyIYaMXauLPW2u03Nf5GTy4lX5TWneLk1mvrp47qsAfS0aJ.g";

    #[test]
    fn matches_passlib_vectors() {
        let salt: Vec<u8> = (0u8..16).collect();
        assert_eq!(
            hash_password_with("correct horse battery staple", 600_000, &salt),
            PASSLIB_600K
        );
        assert_eq!(
            hash_password_with("pässwörd", 1000, &[0xff; 16]),
            PASSLIB_1K_UTF8
        );
    }

    #[test]
    fn verifies_passlib_hashes() {
        assert!(verify_password(
            "correct horse battery staple",
            PASSLIB_600K
        ));
        assert!(verify_password("pässwörd", PASSLIB_1K_UTF8));
        assert!(!verify_password("passwörd", PASSLIB_1K_UTF8));
        assert!(!verify_password("pässwörd ", PASSLIB_1K_UTF8));
    }

    #[test]
    fn verifies_the_fixture_admin_hash() {
        assert!(verify_password("admin", FIXTURE_ADMIN));
    }

    #[test]
    fn rejects_malformed_hashes() {
        for bad in [
            "",
            "admin",
            "$pbkdf2-sha256$1000$AAAA$BBBB",
            "$pbkdf2-sha512$x$AAECAwQFBgcICQoLDA0ODw$HPMK",
            "$pbkdf2-sha512$1000$AAECAwQFBgcICQoLDA0ODw$short",
            "$pbkdf2-sha512$0$AAECAwQFBgcICQoLDA0ODw$HPMKUYh49Erst1wODQ1poCrF.RgaU7UpIJLhCjwMu0FQip6EKIUUkNiJ4BvDKV0UdO8BuHufX3D.ExFyclsWAw",
        ] {
            assert!(!verify_password("x", bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn async_hash_has_odoo_shape_and_verifies() -> Result<(), super::super::hashing::HashError>
    {
        let hash = hash_password(&SecretString::from("s3cret!")).await?;
        let parts: Vec<&str> = hash.split('$').collect();
        assert_eq!(parts.len(), 5, "{hash}");
        assert_eq!(parts[1], "pbkdf2-sha512");
        assert_eq!(parts[2], "600000");
        assert_eq!(parts[3].len(), 22, "16-byte salt, ab64 without padding");
        assert_eq!(parts[4].len(), 86, "64-byte checksum, ab64 without padding");
        assert!(!hash.contains('+') && !hash.contains('='));
        assert!(verify_password("s3cret!", &hash));
        Ok(())
    }
}
