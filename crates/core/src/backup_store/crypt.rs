//! Client-side encryption of backups at rest (`BACKUP_ENCRYPTION_KEY`).
//!
//! Format (all of it documented in README.md, "Backup encryption"):
//!
//! ```text
//! magic "OSBKENC1" (8 bytes) | key id (8) | nonce prefix (19) | segment*
//! ```
//!
//! The plain zip is cut into segments of [`CHUNK_PLAIN`] bytes (the last one
//! shorter, possibly empty), each sealed with XChaCha20-Poly1305 in the STREAM
//! construction (`aead::stream`, big-endian 32-bit counter and last-segment
//! flag in the nonce), the 35-byte header as associated data, so a segment
//! cannot be dropped, reordered, truncated away or moved to another object.
//! The key id is the first 8 bytes of SHA-256("odoo-saas backup key id" ||
//! key): it tells "another key" apart from "corrupt". An object that does not
//! start with the magic is a plain zip (written before encryption was on).

use std::io::{self, Write};

use bytes::{Bytes, BytesMut};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::generic_array::GenericArray;
use chacha20poly1305::aead::stream::{DecryptorBE32, EncryptorBE32};
use chacha20poly1305::aead::{KeyInit as _, Payload};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt as _};
use rand::RngCore as _;

use super::settings::EncryptionKey;

pub const FORMAT_MAGIC: &[u8; 8] = b"OSBKENC1";
/// Plain bytes per segment.
pub const CHUNK_PLAIN: usize = 64 * 1024;
const TAG: usize = 16;
const NONCE_PREFIX: usize = 19;
const HEADER: usize = 8 + 8 + NONCE_PREFIX;
const SEGMENT: usize = CHUNK_PLAIN + TAG;

/// The size of the encrypted object of a `plain`-byte backup.
pub fn encrypted_size(plain: u64) -> u64 {
    let chunk = CHUNK_PLAIN as u64;
    let segments = plain.div_ceil(chunk).max(1);
    HEADER as u64 + plain + segments * TAG as u64
}

fn cipher(key: &EncryptionKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(GenericArray::from_slice(key.bytes()))
}

/// A `Write` that encrypts what it is given into `inner`; [`finish`] seals
/// the last segment (a writer dropped unfinished leaves an object that
/// never decrypts: truncation is detected).
///
/// [`finish`]: EncryptingWriter::finish
pub struct EncryptingWriter<W: Write> {
    inner: W,
    encryptor: Option<EncryptorBE32<XChaCha20Poly1305>>,
    header: [u8; HEADER],
    buf: Vec<u8>,
    header_written: bool,
}

impl<W: Write> EncryptingWriter<W> {
    pub fn new(key: &EncryptionKey, inner: W) -> Self {
        let mut prefix = [0u8; NONCE_PREFIX];
        rand::rng().fill_bytes(&mut prefix);
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(FORMAT_MAGIC);
        header[8..16].copy_from_slice(&key.id());
        header[16..].copy_from_slice(&prefix);
        let encryptor = EncryptorBE32::from_aead(cipher(key), GenericArray::from_slice(&prefix));
        Self {
            inner,
            encryptor: Some(encryptor),
            header,
            buf: Vec::with_capacity(CHUNK_PLAIN),
            header_written: false,
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.inner.write_all(&self.header)?;
            self.header_written = true;
        }
        Ok(())
    }

    fn seal_full_chunk(&mut self) -> io::Result<()> {
        self.write_header()?;
        let encryptor = self.encryptor.as_mut().ok_or_else(finished)?;
        let sealed = encryptor
            .encrypt_next(Payload {
                msg: &self.buf,
                aad: &self.header,
            })
            .map_err(|_| io::Error::other("encrypting a backup segment failed"))?;
        self.buf.clear();
        self.inner.write_all(&sealed)
    }

    /// Seals the last segment and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_header()?;
        let encryptor = self.encryptor.take().ok_or_else(finished)?;
        let sealed = encryptor
            .encrypt_last(Payload {
                msg: &self.buf,
                aad: &self.header,
            })
            .map_err(|_| io::Error::other("encrypting the last backup segment failed"))?;
        self.inner.write_all(&sealed)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

fn finished() -> io::Error {
    io::Error::other("the encrypted backup was already finished")
}

impl<W: Write> Write for EncryptingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full chunk is sealed only once more data shows it is not the last.
        if self.buf.len() == CHUNK_PLAIN {
            self.seal_full_chunk()?;
        }
        let n = data.len().min(CHUNK_PLAIN - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Why an object cannot be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    #[error("the backup is encrypted but BACKUP_ENCRYPTION_KEY is not set")]
    NoKey,
    #[error("the backup is encrypted with another BACKUP_ENCRYPTION_KEY")]
    OtherKey,
    #[error("the encrypted backup is corrupt or truncated (segment {0} does not authenticate)")]
    Corrupt(u64),
}

/// The plain bytes of a stored object: decrypted when it starts with the
/// format's magic (with `key`), passed through as it is otherwise.
pub type DecryptingStream = BoxStream<'static, io::Result<Bytes>>;

pub fn decrypt_stream<S>(key: Option<EncryptionKey>, inner: S) -> DecryptingStream
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    struct State<S> {
        inner: std::pin::Pin<Box<S>>,
        key: Option<EncryptionKey>,
        buf: BytesMut,
        mode: Mode,
        segment: u64,
        ended: bool,
    }
    enum Mode {
        Sniffing,
        Plain,
        Encrypted {
            decryptor: Box<DecryptorBE32<XChaCha20Poly1305>>,
            header: [u8; HEADER],
        },
        Done,
    }
    let state = State {
        inner: Box::pin(inner),
        key,
        buf: BytesMut::new(),
        mode: Mode::Sniffing,
        segment: 0,
        ended: false,
    };
    let fail = |state: State<S>, err: io::Error| {
        let mut state = state;
        state.mode = Mode::Done;
        Some((Err(err), state))
    };
    futures::stream::unfold(state, move |mut state| async move {
        loop {
            match &mut state.mode {
                Mode::Done => return None,
                Mode::Plain => {
                    if !state.buf.is_empty() {
                        let out = state.buf.split().freeze();
                        return Some((Ok(out), state));
                    }
                    return state.inner.next().await.map(|item| (item, state));
                }
                Mode::Sniffing => {
                    if state.buf.len() >= HEADER || state.ended {
                        if state.buf.len() < 8 || &state.buf[..8] != FORMAT_MAGIC {
                            state.mode = Mode::Plain;
                            continue;
                        }
                        if state.buf.len() < HEADER {
                            return fail(state, io::Error::other(DecryptError::Corrupt(0)));
                        }
                        let Some(key) = state.key.clone() else {
                            return fail(state, io::Error::other(DecryptError::NoKey));
                        };
                        if state.buf[8..16] != key.id() {
                            return fail(state, io::Error::other(DecryptError::OtherKey));
                        }
                        let mut header = [0u8; HEADER];
                        header.copy_from_slice(&state.buf.split_to(HEADER));
                        let decryptor = DecryptorBE32::from_aead(
                            cipher(&key),
                            GenericArray::from_slice(&header[16..]),
                        );
                        state.mode = Mode::Encrypted {
                            decryptor: Box::new(decryptor),
                            header,
                        };
                        continue;
                    }
                }
                Mode::Encrypted { decryptor, header } => {
                    if state.buf.len() > SEGMENT {
                        let sealed = state.buf.split_to(SEGMENT);
                        let opened = decryptor.decrypt_next(Payload {
                            msg: &sealed,
                            aad: header,
                        });
                        state.segment += 1;
                        return match opened {
                            Ok(plain) => Some((Ok(Bytes::from(plain)), state)),
                            Err(_) => {
                                let segment = state.segment;
                                fail(state, io::Error::other(DecryptError::Corrupt(segment)))
                            }
                        };
                    }
                    if state.ended {
                        let sealed = state.buf.split();
                        let header = *header;
                        let Mode::Encrypted { decryptor, .. } =
                            std::mem::replace(&mut state.mode, Mode::Done)
                        else {
                            return None;
                        };
                        let segment = state.segment + 1;
                        return match decryptor.decrypt_last(Payload {
                            msg: &sealed,
                            aad: &header,
                        }) {
                            Ok(plain) if plain.is_empty() => None,
                            Ok(plain) => Some((Ok(Bytes::from(plain)), state)),
                            Err(_) => fail(state, io::Error::other(DecryptError::Corrupt(segment))),
                        };
                    }
                }
            }
            // More input is needed.
            match state.inner.next().await {
                Some(Ok(chunk)) => state.buf.extend_from_slice(&chunk),
                Some(Err(err)) => return fail(state, err),
                None => state.ended = true,
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt as _;

    fn encrypt(key: &EncryptionKey, plain: &[u8], write_size: usize) -> Vec<u8> {
        let mut writer = EncryptingWriter::new(key, Vec::new());
        for part in plain.chunks(write_size.max(1)) {
            writer.write_all(part).expect("write");
        }
        writer.finish().expect("finish")
    }

    async fn decrypt(
        key: Option<EncryptionKey>,
        sealed: Vec<u8>,
        read_size: usize,
    ) -> io::Result<Vec<u8>> {
        let parts: Vec<io::Result<Bytes>> = sealed
            .chunks(read_size.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let out: Vec<Bytes> = decrypt_stream(key, futures::stream::iter(parts))
            .try_collect()
            .await?;
        Ok(out.concat())
    }

    #[tokio::test]
    async fn round_trips_at_every_boundary_and_detects_tampering() {
        let key = EncryptionKey::from_bytes([7u8; 32]);
        for len in [
            0,
            1,
            CHUNK_PLAIN - 1,
            CHUNK_PLAIN,
            CHUNK_PLAIN + 1,
            3 * CHUNK_PLAIN,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = encrypt(&key, &plain, 10_000);
            assert_eq!(sealed.len() as u64, encrypted_size(len as u64), "{len}");
            assert_eq!(&sealed[..8], FORMAT_MAGIC);
            for read in [7, 4096, 1 << 20] {
                let back = decrypt(Some(key.clone()), sealed.clone(), read)
                    .await
                    .expect("decrypts");
                assert_eq!(back, plain, "{len} read by {read}");
            }
            let mut flipped = sealed.clone();
            let last = flipped.len() - 1;
            flipped[last] ^= 1;
            assert!(
                decrypt(Some(key.clone()), flipped, 4096).await.is_err(),
                "{len}: tampered"
            );
            if len > CHUNK_PLAIN {
                let truncated = sealed[..HEADER + SEGMENT].to_vec();
                assert!(
                    decrypt(Some(key.clone()), truncated, 4096).await.is_err(),
                    "{len}: truncated"
                );
            }
        }
        let sealed = encrypt(&key, b"PK\x03\x04 a zip", 3);
        let other = EncryptionKey::from_bytes([8u8; 32]);
        let err = decrypt(Some(other), sealed.clone(), 64)
            .await
            .expect_err("another key");
        assert!(err.to_string().contains("another"), "{err}");
        let err = decrypt(None, sealed, 64).await.expect_err("no key");
        assert!(err.to_string().contains("not set"), "{err}");
        // Plain zips pass through, with or without a key.
        let plain = b"PK\x03\x04 a plain zip".to_vec();
        assert_eq!(
            decrypt(Some(key), plain.clone(), 3).await.expect("plain"),
            plain
        );
        assert_eq!(
            decrypt(None, Vec::new(), 3).await.expect("empty"),
            Vec::<u8>::new()
        );
    }
}
