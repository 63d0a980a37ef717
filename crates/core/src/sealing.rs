//! Sealing a secret for the worker: the request that receives a customer's
//! Odoo admin password must answer at once, and hashing it the way Odoo
//! stores it costs about a second of CPU; so the request seals it
//! (XChaCha20-Poly1305) and the worker opens and hashes it while the
//! template clones.
//!
//! The key is derived from `SECRET_KEY` with HKDF-SHA256 under a label of its
//! own, so it is never the configured secret itself and no other use of that
//! secret can produce it. What is sealed is bound (as associated data) to its
//! purpose and its tenant: a sealed blob copied into another tenant's row,
//! or altered in any way, does not open.

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretBox, SecretString};
use sha2::Sha256;
use uuid::Uuid;

/// The HKDF `info` of the sealing key: a new label is a new key.
const KEY_LABEL: &[u8] = b"odoo-saas operation secrets v1";
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// What a sealed secret is for; part of what it is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The Odoo admin password of a provision or a password reset.
    OdooAdminPassword,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::OdooAdminPassword => "odoo_admin_password",
        }
    }
}

/// Why a sealed secret did not open. Neither says anything about the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the sealed secret is malformed ({0})")]
    Malformed(&'static str),
    #[error(
        "the sealed secret does not open: it was sealed under another SECRET_KEY, for another \
         tenant or purpose, or it was altered"
    )]
    Rejected,
}

/// The key secrets are sealed under, derived from `SECRET_KEY`.
pub struct SealingKey(SecretBox<[u8; 32]>);

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey([REDACTED])")
    }
}

impl SealingKey {
    /// HKDF-SHA256 of `secret_key` under the sealing label.
    pub fn derive(secret_key: &SecretString) -> Self {
        let hkdf = Hkdf::<Sha256>::new(None, secret_key.expose_secret().as_bytes());
        let mut key = Box::new([0u8; 32]);
        hkdf.expand(KEY_LABEL, key.as_mut_slice())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self(SecretBox::new(key))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(self.0.expose_secret()))
    }

    /// `secret` sealed for `purpose` of `tenant`: version, random nonce,
    /// ciphertext with its tag.
    pub fn seal(&self, purpose: Purpose, tenant: Uuid, secret: &SecretString) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = associated_data(purpose, tenant);
        let payload = Payload {
            msg: secret.expose_secret().as_bytes(),
            aad: &aad,
        };
        // Encryption fails only for messages beyond what the cipher can
        // count (256 GiB); a password is never near that.
        let ciphertext = self
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// The secret `sealed` holds, if it was sealed by this key for `purpose`
    /// of `tenant` and not altered since.
    pub fn open(
        &self,
        purpose: Purpose,
        tenant: Uuid,
        sealed: &[u8],
    ) -> Result<SecretString, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Malformed("empty"))?;
        if version != VERSION {
            return Err(SealError::Malformed("unknown version"));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed("too short"));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = associated_data(purpose, tenant);
        let plain = self
            .cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Rejected)?;
        let text = String::from_utf8(plain).map_err(|_| SealError::Malformed("not UTF-8"))?;
        Ok(SecretString::from(text))
    }
}

fn associated_data(purpose: Purpose, tenant: Uuid) -> Vec<u8> {
    format!("odoo-saas/{}/{tenant}", purpose.as_str()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> SealingKey {
        SealingKey::derive(&SecretString::from(secret.to_owned()))
    }

    const SECRET: &str = "test-secret-key-0123456789abcdef-0123";

    #[test]
    fn opens_what_it_sealed_and_nothing_else() {
        let key = key(SECRET);
        let tenant = Uuid::new_v4();
        let password = SecretString::from("correct horse battery staple");
        let sealed = key.seal(Purpose::OdooAdminPassword, tenant, &password);
        assert!(!sealed.windows(5).any(|w| w == b"horse"));
        let opened = key.open(Purpose::OdooAdminPassword, tenant, &sealed);
        assert_eq!(
            opened.map(|s| s.expose_secret().to_owned()),
            Ok("correct horse battery staple".to_owned())
        );
        // Another tenant, another SECRET_KEY: refused, not garbage.
        assert_eq!(
            key.open(Purpose::OdooAdminPassword, Uuid::new_v4(), &sealed)
                .err(),
            Some(SealError::Rejected)
        );
        assert_eq!(
            self::key("another-secret-key-0123456789abcdef-0123")
                .open(Purpose::OdooAdminPassword, tenant, &sealed)
                .err(),
            Some(SealError::Rejected)
        );
    }

    #[test]
    fn every_altered_byte_is_refused() {
        let key = key(SECRET);
        let tenant = Uuid::new_v4();
        let sealed = key.seal(
            Purpose::OdooAdminPassword,
            tenant,
            &SecretString::from("hunter2-hunter2"),
        );
        for index in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[index] ^= 0x01;
            assert!(
                key.open(Purpose::OdooAdminPassword, tenant, &tampered)
                    .is_err(),
                "byte {index} altered and still opened"
            );
        }
        for cut in [0, 1, 24, 40, sealed.len() - 1] {
            assert!(
                key.open(Purpose::OdooAdminPassword, tenant, &sealed[..cut])
                    .is_err()
            );
        }
    }

    #[test]
    fn seals_differ_and_the_key_never_prints() {
        let key = key(SECRET);
        let tenant = Uuid::new_v4();
        let password = SecretString::from("same password");
        assert_ne!(
            key.seal(Purpose::OdooAdminPassword, tenant, &password),
            key.seal(Purpose::OdooAdminPassword, tenant, &password)
        );
        assert_eq!(format!("{key:?}"), "SealingKey([REDACTED])");
    }
}
