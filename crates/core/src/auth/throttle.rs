//! Fixed-window attempt counters in Redis, e.g. login attempts per account
//! and per address.

use std::time::Duration;

use redis::aio::ConnectionManager;

/// Too many attempts; try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many attempts; try again in {} s", retry_after.as_secs())]
pub struct Throttled {
    pub retry_after: Duration,
}

/// Counts an attempt for `key`; refuses once more than `limit` attempts
/// fell within `window`.
pub async fn hit(
    conn: &mut ConnectionManager,
    key: &str,
    limit: u32,
    window: Duration,
) -> Result<Result<(), Throttled>, redis::RedisError> {
    let (count, ttl): (u32, i64) = redis::pipe()
        .atomic()
        .incr(key, 1)
        .expire(key, i64::try_from(window.as_secs()).unwrap_or(i64::MAX))
        .arg("NX")
        .ignore()
        .ttl(key)
        .query_async(conn)
        .await?;
    if count > limit {
        let retry_after = Duration::from_secs(u64::try_from(ttl.max(1)).unwrap_or(1));
        return Ok(Err(Throttled { retry_after }));
    }
    Ok(Ok(()))
}

/// Whether `key` is over its limit right now, without counting an attempt.
pub async fn check(
    conn: &mut ConnectionManager,
    key: &str,
    limit: u32,
) -> Result<Result<(), Throttled>, redis::RedisError> {
    let (count, ttl): (Option<u32>, i64) =
        redis::pipe().get(key).ttl(key).query_async(conn).await?;
    match count {
        Some(count) if count > limit => Ok(Err(Throttled {
            retry_after: Duration::from_secs(u64::try_from(ttl.max(1)).unwrap_or(1)),
        })),
        _ => Ok(Ok(())),
    }
}

/// Clears the counter, e.g. after a successful login.
pub async fn reset(conn: &mut ConnectionManager, key: &str) -> Result<(), redis::RedisError> {
    redis::cmd("DEL").arg(key).query_async(conn).await
}

/// Counts one event for `key` and returns how many fell within `window`
/// (the window starts with the first).
pub async fn count(
    conn: &mut ConnectionManager,
    key: &str,
    window: Duration,
) -> Result<u32, redis::RedisError> {
    let (count,): (u32,) = redis::pipe()
        .atomic()
        .incr(key, 1)
        .expire(key, i64::try_from(window.as_secs()).unwrap_or(i64::MAX))
        .arg("NX")
        .ignore()
        .query_async(conn)
        .await?;
    Ok(count)
}

/// How many events `key` holds now, and how long until they expire.
pub async fn current(
    conn: &mut ConnectionManager,
    key: &str,
) -> Result<(u32, Duration), redis::RedisError> {
    let (count, ttl): (Option<u32>, i64) =
        redis::pipe().get(key).ttl(key).query_async(conn).await?;
    let ttl = Duration::from_secs(u64::try_from(ttl.max(1)).unwrap_or(1));
    Ok((count.unwrap_or(0), ttl))
}
