//! Redis is the transport: the job pushed to apalis-redis carries only the
//! operation id. A marker key per pushed id lets the reconciler find queued
//! operations that Redis lost (a flush, a restart without persistence).

use std::time::Duration;

use crate::error_chain::Chain;
use apalis_core::backend::TaskSink;
use apalis_redis::{Config as ApalisConfig, ConnectionManager, RedisStorage};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The job on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationJob {
    pub operation_id: Uuid,
}

/// How long a pushed id counts as "in Redis" before the reconciler pushes it
/// again if it is still queued in PostgreSQL.
pub const MARKER_TTL: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("pushing the job failed: {0}")]
    Push(String),
    #[error("removing finished jobs failed: {0}")]
    Vacuum(String),
}

/// The operations queue in Redis, under a key prefix.
#[derive(Clone)]
pub struct OpsQueue {
    conn: ConnectionManager,
    prefix: String,
}

/// `text` with Redis glob characters escaped, for SCAN MATCH.
fn glob_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '*' | '?' | '[' | ']' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect()
}

impl OpsQueue {
    /// Connects to Redis; `prefix` namespaces every key (e.g. `saas:`).
    pub async fn connect(redis: &redis::Client, prefix: &str) -> Result<Self, QueueError> {
        let conn = ConnectionManager::new(redis.clone()).await?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    /// A queue on an existing connection.
    pub fn from_connection(conn: ConnectionManager, prefix: &str) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
        }
    }

    /// The apalis queue name.
    pub fn queue_name(&self) -> String {
        format!("{}operations", self.prefix)
    }

    /// An apalis storage on this queue, for pushing or for a consumer that
    /// beats every `heartbeat` and counts as gone (its fetched jobs pushed
    /// again by the other consumers) only after `tolerance` without a beat.
    pub fn storage(&self, heartbeat: Duration, tolerance: Duration) -> RedisStorage<OperationJob> {
        let beats = tolerance.as_millis().div_ceil(heartbeat.as_millis().max(1));
        let config = ApalisConfig::default()
            .queue(self.queue_name())
            .heartbeat_interval(heartbeat)
            .missed_heartbeats(usize::try_from(beats).unwrap_or(usize::MAX).max(2))
            // apalis publishes an event per push, lease and result for
            // listeners of its own; nothing here listens (idle workers wake
            // on `wake_channel`), so those are three PUBLISHes per job for no one.
            .emit_events(false);
        RedisStorage::new(self.conn.clone()).with_config(config)
    }

    fn marker(&self, id: Uuid) -> String {
        format!("{}ops:pushed:{id}", self.prefix)
    }

    /// The pub/sub channel that wakes idle workers after a push.
    pub fn wake_channel(&self) -> String {
        format!("{}ops:wake", self.prefix)
    }

    /// Pushes operation `id`, marks it pushed, and wakes idle workers.
    pub async fn push(&self, id: Uuid) -> Result<(), QueueError> {
        let mut storage = self.storage(Duration::from_secs(30), Duration::from_secs(300));
        storage
            .push(OperationJob { operation_id: id })
            .await
            .map_err(|err| QueueError::Push(crate::error_chain::chain(&err)))?;
        let mut conn = self.conn.clone();
        redis::pipe()
            .set_ex(self.marker(id), 1, MARKER_TTL.as_secs())
            .ignore()
            .publish(self.wake_channel(), 1)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// Forgets that `id` was pushed, so the reconciler pushes it again when
    /// it is due (used when a worker could not start it yet).
    pub async fn forget(&self, id: Uuid) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        let _: () = conn.del(self.marker(id)).await?;
        Ok(())
    }

    /// Which of `ids` Redis does not know as pushed.
    pub async fn missing(&self, ids: &[Uuid]) -> Result<Vec<Uuid>, QueueError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(|id| self.marker(*id)).collect();
        let mut conn = self.conn.clone();
        let present: Vec<Option<u8>> = redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        Ok(ids
            .iter()
            .zip(present)
            .filter(|(_, marker)| marker.is_none())
            .map(|(id, _)| *id)
            .collect())
    }

    /// An endless stream that yields whenever something was pushed, so an
    /// idle worker fetches at once instead of at its next heartbeat. It
    /// resubscribes (yielding once, to fetch anything missed) when the
    /// subscription breaks.
    pub fn wake_signals(
        &self,
        client: redis::Client,
    ) -> std::pin::Pin<Box<dyn futures::Stream<Item = ()> + Send>> {
        use futures::StreamExt;
        let channel = self.wake_channel();
        let stream = futures::stream::unfold(
            None,
            move |subscription: Option<redis::aio::PubSubStream>| {
                let client = client.clone();
                let channel = channel.clone();
                async move {
                    if let Some(mut messages) = subscription
                        && messages.next().await.is_some()
                    {
                        return Some(((), Some(messages)));
                    }
                    loop {
                        match client.get_async_pubsub().await {
                            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                                Ok(()) => return Some(((), Some(pubsub.into_on_message()))),
                                Err(err) => {
                                    tracing::warn!(error = %Chain(&err), "wake subscription failed; retrying")
                                }
                            },
                            Err(err) => {
                                tracing::debug!(error = %Chain(&err), "wake subscription: Redis not reachable")
                            }
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            },
        );
        // One item per poll for however many pushes arrived: the consumer
        // polls this once per fetch, so wakes must not queue up behind it,
        // and ending on `Pending` keeps the waker registered for the next push.
        let mut stream = Box::pin(stream);
        Box::pin(futures::stream::poll_fn(move |cx| {
            let mut woken = false;
            loop {
                match futures::Stream::poll_next(stream.as_mut(), cx) {
                    std::task::Poll::Ready(Some(())) => woken = true,
                    std::task::Poll::Ready(None) => {
                        return std::task::Poll::Ready(woken.then_some(()));
                    }
                    std::task::Poll::Pending => {
                        return if woken {
                            std::task::Poll::Ready(Some(()))
                        } else {
                            std::task::Poll::Pending
                        };
                    }
                }
            }
        }))
    }

    /// Removes what apalis keeps of finished jobs: their data and metadata
    /// (apalis' own vacuum) and the sets of done and dead job ids, which
    /// apalis only adds to and nothing here reads. Without it Redis grows
    /// with every operation ever run. Returns how many jobs went.
    pub async fn vacuum(&self) -> Result<usize, QueueError> {
        use apalis_core::backend::Vacuum;
        let mut storage = self.storage(Duration::from_secs(30), Duration::from_secs(300));
        let removed = storage
            .vacuum()
            .await
            .map_err(|err| QueueError::Vacuum(crate::error_chain::chain(&err)))?;
        let config = ApalisConfig::default().queue(self.queue_name());
        let mut conn = self.conn.clone();
        let _: () = conn
            .del(&[config.done_jobs_set(), config.dead_jobs_set()])
            .await?;
        Ok(removed)
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Removes apalis' metadata hashes (`<queue>:workers:metadata:<name>`)
    /// of queue consumers apalis no longer counts as registered: apalis
    /// forgets an expired consumer in its workers set but never deletes its
    /// hash, so every worker start or consumer restart would leave one with
    /// no TTL. A consumer registers both in one script, so a hash without
    /// its set entry belongs to no live consumer. Returns how many went.
    pub async fn reap_consumer_metadata(&self) -> Result<usize, QueueError> {
        let workers = format!("{}:workers", self.queue_name());
        let mut conn = self.conn.clone();
        let mut reaped = 0;
        for (key, consumer) in self.consumer_metadata("").await? {
            let seen: Option<f64> = conn.zscore(&workers, &consumer).await?;
            if seen.is_none() {
                let _: () = conn.del(&key).await?;
                reaped += 1;
            }
        }
        Ok(reaped)
    }

    /// Deregisters every queue consumer of worker `worker` (named
    /// `<worker>-<generation>`) from apalis, metadata and all: a worker that
    /// stops cleanly leaves nothing behind.
    pub async fn forget_consumers_of(&self, worker: &str) -> Result<usize, QueueError> {
        let workers = format!("{}:workers", self.queue_name());
        let mut conn = self.conn.clone();
        let mine = self.consumer_metadata(&format!("{worker}-")).await?;
        for (key, consumer) in &mine {
            let _: () = conn.zrem(&workers, consumer).await?;
            let _: () = conn.del(key).await?;
        }
        Ok(mine.len())
    }

    /// apalis' consumer metadata keys whose consumer name starts with
    /// `starting`, with that name.
    async fn consumer_metadata(&self, starting: &str) -> Result<Vec<(String, String)>, QueueError> {
        let prefix = format!("{}:workers:metadata:", self.queue_name());
        let pattern = format!("{}*", glob_escape(&format!("{prefix}{starting}")));
        let mut conn = self.conn.clone();
        let mut found = conn.scan_match::<_, String>(pattern).await?;
        let mut keys = Vec::new();
        while let Some(key) = futures::StreamExt::next(&mut found).await {
            let key = key?;
            if let Some(name) = key.strip_prefix(&prefix) {
                let name = name.to_owned();
                keys.push((key, name));
            }
        }
        Ok(keys)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}
