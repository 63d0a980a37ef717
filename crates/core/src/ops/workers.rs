//! Worker identity and liveness. A worker names itself hostname + pid +
//! random suffix, so a restarted worker never finds its name taken, and keeps
//! a heartbeat key with a TTL in Redis: a dead worker disappears by itself.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a live worker reports about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    pub hostname: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub concurrency: usize,
    pub running: Vec<Uuid>,
}

/// `hostname-pid-xxxxxx`: unique across restarts and hosts.
pub fn worker_name(hostname: &str) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..6)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect();
    let host: String = hostname
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(64)
        .collect();
    format!(
        "{}-{}-{suffix}",
        if host.is_empty() { "worker" } else { &host },
        std::process::id()
    )
}

fn index_key(prefix: &str) -> String {
    format!("{prefix}workers")
}

fn info_key(prefix: &str, name: &str) -> String {
    format!("{prefix}workers:info:{name}")
}

/// Publishes `info` with a TTL; the worker calls this every few seconds.
pub async fn beat<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    prefix: &str,
    info: &WorkerInfo,
    ttl: Duration,
) -> redis::RedisResult<()> {
    let payload = serde_json::to_string(info).unwrap_or_default();
    redis::pipe()
        .set_ex(info_key(prefix, &info.name), payload, ttl.as_secs().max(1))
        .ignore()
        .zadd(index_key(prefix), &info.name, info.heartbeat_at.timestamp())
        .ignore()
        .query_async::<()>(conn)
        .await
}

/// Removes a worker that stops cleanly.
pub async fn remove<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    prefix: &str,
    name: &str,
) -> redis::RedisResult<()> {
    redis::pipe()
        .del(info_key(prefix, name))
        .ignore()
        .zrem(index_key(prefix), name)
        .ignore()
        .query_async::<()>(conn)
        .await
}

/// Workers whose heartbeat has not expired, by name; forgets the dead ones.
pub async fn live<C: redis::aio::ConnectionLike + Send + AsyncCommands>(
    conn: &mut C,
    prefix: &str,
) -> redis::RedisResult<Vec<WorkerInfo>> {
    let names: Vec<String> = conn.zrange(index_key(prefix), 0, -1).await?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = names.iter().map(|n| info_key(prefix, n)).collect();
    let payloads: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(conn).await?;
    let mut live = Vec::new();
    let mut dead = Vec::new();
    for (name, payload) in names.into_iter().zip(payloads) {
        match payload.and_then(|p| serde_json::from_str::<WorkerInfo>(&p).ok()) {
            Some(info) => live.push(info),
            None => dead.push(name),
        }
    }
    if !dead.is_empty() {
        let _: () = conn.zrem(index_key(prefix), dead).await?;
    }
    live.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(live)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_carry_host_and_pid() {
        let a = worker_name("host-1");
        let b = worker_name("host-1");
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("host-1-{}-", std::process::id())));
        assert!(worker_name("").starts_with("worker-"));
    }
}
