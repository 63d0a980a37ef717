//! The one gate every password hash and verification passes through.
//!
//! Argon2id costs 19 MiB and tens of milliseconds per call, PBKDF2 (Odoo's
//! format) most of a second of CPU. Run unbounded on tokio's blocking pool
//! (up to 512 threads), 128 concurrent anonymous requests took a portal to
//! gigabytes of memory. Here at most one hash per core runs at a time, on
//! threads of its own: a hash's 19 MiB is freed into the allocator arena of
//! the thread that made it, and a few long-lived threads reuse theirs where
//! a changing crowd of blocking-pool threads would each keep one (measured:
//! 500 MB peak under 128 hostile clients with the blocking pool). A request
//! that cannot get a slot within [`MAX_WAIT`] is refused with
//! [`HashError::Busy`], which the HTTP crates answer 503 with `Retry-After`.

use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};

/// The longest a request waits for a free hashing slot.
pub const MAX_WAIT: Duration = Duration::from_secs(3);
/// What a refused request is told to wait before trying again.
pub const RETRY_AFTER: Duration = Duration::from_secs(2);

/// Why no hash was computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// Every slot stayed taken for [`MAX_WAIT`]: the process is saturated.
    #[error("too many sign-ins at once; try again in {} s", .retry_after.as_secs())]
    Busy { retry_after: Duration },
    /// The hasher itself failed (a bad parameter, a panicked thread).
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// How many hashes may run at once in this process: one per core the
/// process may use (cgroup quotas included).
pub fn slots() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

type Job = Box<dyn FnOnce() + Send>;

/// The slots, and the hashing threads (as many as slots) they feed.
struct Gate {
    slots: Arc<Semaphore>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

fn gate() -> &'static Gate {
    static GATE: OnceLock<Gate> = OnceLock::new();
    GATE.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..slots() {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{n}"))
                .spawn(move || {
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "cannot start a password hashing thread");
            }
        }
        Gate {
            slots: Arc::new(Semaphore::new(slots())),
            jobs: Mutex::new(jobs),
        }
    })
}

/// Runs `work` (a hash or a verification) on a hashing thread once a slot
/// is free. The slot travels with the work, so a request that is dropped
/// mid-hash (the client went away) still holds it until the hash ends.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HashError> {
    let gate = gate();
    let permit = match tokio::time::timeout(MAX_WAIT, gate.slots.clone().acquire_owned()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(closed)) => return Err(HashError::Failed(closed.to_string())),
        Err(_) => {
            tracing::warn!("password hashing saturated: request refused with 503");
            return Err(HashError::Busy {
                retry_after: RETRY_AFTER,
            });
        }
    };
    let (done, result) = oneshot::channel();
    let job: Job = Box::new(move || {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(work))
            .map_err(|_| HashError::Failed("the hashing thread panicked".to_owned()));
        drop(permit);
        let _ = done.send(outcome);
    });
    let sent = gate
        .jobs
        .lock()
        .map_err(|_| HashError::Failed("the hashing threads are gone".to_owned()))?
        .send(job);
    if sent.is_err() {
        return Err(HashError::Failed("the hashing threads are gone".to_owned()));
    }
    result
        .await
        .map_err(|_| HashError::Failed("the hashing thread dropped the work".to_owned()))?
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn never_more_than_one_hash_per_core_and_waiters_are_refused_in_time() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let calls: Vec<_> = (0..(slots() * 4 + 8))
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(700));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        let mut busy = 0;
        for call in calls {
            match call.await {
                Ok(Ok(())) => {}
                Ok(Err(HashError::Busy { retry_after })) => {
                    assert_eq!(retry_after, RETRY_AFTER);
                    busy += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(most.load(Ordering::SeqCst) <= slots());
        assert!(busy > 0, "no waiter was refused");
        // Everyone was answered within the bounded wait plus one hash.
        assert!(started.elapsed() < MAX_WAIT + Duration::from_secs(3));
    }
}
