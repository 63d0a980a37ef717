//! Checking a backup's bytes against the SHA-256 recorded when it was made,
//! while they stream: the last chunk is held back until the digest matches,
//! so a reader of a corrupt object sees an error, never a clean end.

use std::io;

use bytes::Bytes;
use futures::{Stream, StreamExt as _};
use sha2::{Digest as _, Sha256};

/// The bytes read do not have the recorded digest.
#[derive(Debug, thiserror::Error)]
#[error(
    "the backup's SHA-256 is {actual}, not the recorded {expected}: the stored copy is corrupt"
)]
pub struct Sha256Mismatch {
    pub expected: String,
    pub actual: String,
}

/// `inner`, unchanged, except that it ends in an error when its bytes'
/// SHA-256 is not `expected` (hex).
pub fn verify_sha256<S>(inner: S, expected: String) -> impl Stream<Item = io::Result<Bytes>> + Send
where
    S: Stream<Item = io::Result<Bytes>> + Send + 'static,
{
    struct State<S> {
        inner: std::pin::Pin<Box<S>>,
        hasher: Sha256,
        held: Option<Bytes>,
        expected: String,
        done: bool,
    }
    let state = State {
        inner: Box::pin(inner),
        hasher: Sha256::new(),
        held: None,
        expected,
        done: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        loop {
            match state.inner.next().await {
                Some(Ok(chunk)) => {
                    state.hasher.update(&chunk);
                    if let Some(previous) = state.held.replace(chunk) {
                        return Some((Ok(previous), state));
                    }
                }
                Some(Err(err)) => {
                    state.done = true;
                    return Some((Err(err), state));
                }
                None => {
                    state.done = true;
                    let actual = hex::encode(std::mem::take(&mut state.hasher).finalize());
                    if !actual.eq_ignore_ascii_case(&state.expected) {
                        let mismatch = Sha256Mismatch {
                            expected: state.expected.clone(),
                            actual,
                        };
                        return Some((Err(io::Error::other(mismatch)), state));
                    }
                    return state.held.take().map(|last| (Ok(last), state));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt as _;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn passes_matching_bytes_and_fails_before_the_end_otherwise() {
        let good = hex::encode(Sha256::digest(b"hello world"));
        let read: Vec<Bytes> = verify_sha256(chunks(&[b"hello ", b"world"]), good.clone())
            .try_collect()
            .await
            .expect("matching digest");
        assert_eq!(read.concat(), b"hello world");

        let mut bad = Box::pin(verify_sha256(chunks(&[b"hello ", b"w0rld"]), good));
        assert_eq!(
            bad.next().await.and_then(Result::ok),
            Some(Bytes::from_static(b"hello "))
        );
        let end = bad.next().await.expect("an error");
        assert!(end.is_err(), "the last chunk is never handed out: {end:?}");
        assert!(bad.next().await.is_none());
    }
}
