//! Authentication primitives shared by admin and portal: password hashes,
//! server-side sessions in Redis, CSRF tokens, throttling, API tokens.

pub mod hashing;
pub mod odoo_password;
pub mod password;
pub mod session;
pub mod signin;
pub mod throttle;
pub mod tokens;

use rand::Rng;
use sha2::{Digest, Sha256};

/// A random URL-safe token of `bytes` random bytes, hex-encoded.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(buf.as_mut_slice());
    hex::encode(buf)
}

/// Hex SHA-256, how tokens are stored: a leaked table or key list does not
/// give anyone a usable token.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
