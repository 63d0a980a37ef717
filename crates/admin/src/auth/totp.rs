//! TOTP second factor (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits), the
//! kind every authenticator app reads from an `otpauth://` URI, and
//! one-time recovery codes.

use hmac::{Hmac, Mac};
use rand::Rng;
use sha1::Sha1;

const STEP_SECS: i64 = 30;
const DIGITS: u32 = 6;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new random secret, base32 without padding (160 bits).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill(&mut bytes);
    base32_encode(&bytes)
}

pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.trim_end_matches('=').bytes() {
        let value = BASE32.iter().position(|b| *b == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | u32::try_from(value).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// The code for the 30-second step holding `unix_secs`.
pub fn code_at(secret: &[u8], unix_secs: i64) -> Option<String> {
    let counter = u64::try_from(unix_secs.div_euclid(STEP_SECS)).ok()?;
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).ok()?;
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let slice: [u8; 4] = digest.get(offset..offset + 4)?.try_into().ok()?;
    let value = u32::from_be_bytes(slice) & 0x7fff_ffff;
    Some(format!(
        "{:0width$}",
        value % 10u32.pow(DIGITS),
        width = DIGITS as usize
    ))
}

/// Whether `code` is valid now, allowing one step of clock drift either way.
/// A valid code is not yet an accepted one: it must also be for a later
/// step than the last accepted ([`matching_step`]).
pub fn verify(secret_base32: &str, code: &str, unix_secs: i64) -> bool {
    matching_step(secret_base32, code, unix_secs).is_some()
}

/// The 30-second step (`unix_secs / 30`, within one step of drift) whose
/// code `code` is; `None` when it is none of them or there is no secret.
pub fn matching_step(secret_base32: &str, code: &str, unix_secs: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let secret = base32_decode(secret_base32).filter(|s| !s.is_empty())?;
    let now = unix_secs.div_euclid(STEP_SECS);
    [1, 0, -1].iter().map(|drift| now + drift).find(|step| {
        code_at(&secret, step * STEP_SECS)
            .is_some_and(|expected| saas_core::auth::constant_time_eq(&expected, &code))
    })
}

/// What an authenticator app scans.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &str) -> String {
    let label: String = serde_urlencoded::to_string([("x", format!("{issuer}:{account}"))])
        .unwrap_or_default()
        .trim_start_matches("x=")
        .to_owned();
    format!("otpauth://totp/{label}?secret={secret}&issuer={issuer}&digits=6&period=30")
}

/// Ten recovery codes such as `4f9a-21c0-7be3`.
pub fn recovery_codes() -> Vec<String> {
    (0..10)
        .map(|_| {
            let raw = saas_core::auth::random_token(6);
            format!("{}-{}-{}", &raw[0..4], &raw[4..8], &raw[8..12])
        })
        .collect()
}

/// Recovery codes are compared by hash, ignoring case and spaces.
pub fn recovery_hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase();
    saas_core::auth::sha256_hex(&normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, secret "12345678901234567890", 8 digits; the
        // last six digits are the 6-digit code.
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59).as_deref(), Some("287082"));
        assert_eq!(code_at(secret, 1_111_111_109).as_deref(), Some("081804"));
        assert_eq!(code_at(secret, 2_000_000_000).as_deref(), Some("279037"));
    }

    #[test]
    fn base32_round_trip_and_verify() {
        let secret = new_secret();
        assert_eq!(secret.len(), 32);
        let bytes = base32_decode(&secret).unwrap_or_default();
        assert_eq!(bytes.len(), 20);
        assert_eq!(base32_encode(&bytes), secret);
        let now = 1_700_000_000;
        let code = code_at(&bytes, now).unwrap_or_default();
        assert!(verify(&secret, &code, now));
        assert!(verify(&secret, &code, now + 30));
        assert!(!verify(&secret, &code, now + 120));
        assert!(!verify(&secret, "000000x", now));
        assert_eq!(matching_step(&secret, &code, now), Some(now / 30));
        assert_eq!(matching_step(&secret, &code, now + 30), Some(now / 30));
        // No secret, no code: an empty key must not make codes computable.
        let empty_key_code = code_at(&[], now).unwrap_or_default();
        assert_eq!(matching_step("", &empty_key_code, now), None);
    }
}
