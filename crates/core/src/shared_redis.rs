//! One Redis connection per process, opened on first use: a service starts
//! (and reports itself not ready) while Redis is down, and reconnects by
//! itself once Redis answers.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

use crate::ops::OpsQueue;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct SharedRedis {
    client: redis::Client,
    prefix: String,
    conn: Arc<OnceCell<ConnectionManager>>,
    queue: Arc<OnceCell<OpsQueue>>,
}

impl SharedRedis {
    pub fn new(client: redis::Client, prefix: &str) -> Self {
        Self {
            client,
            prefix: prefix.to_owned(),
            conn: Arc::new(OnceCell::new()),
            queue: Arc::new(OnceCell::new()),
        }
    }

    /// Prefix of every key the platform writes.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// The shared connection (a `ConnectionManager` reconnects after errors).
    pub async fn conn(&self) -> redis::RedisResult<ConnectionManager> {
        self.conn
            .get_or_try_init(|| async {
                match tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    ConnectionManager::new(self.client.clone()),
                )
                .await
                {
                    Ok(result) => result,
                    Err(_) => Err(redis::RedisError::from((
                        redis::ErrorKind::Io,
                        "Redis did not answer in time",
                    ))),
                }
            })
            .await
            .cloned()
    }

    /// The operations queue on the shared connection.
    pub async fn queue(&self) -> Result<OpsQueue, crate::ops::queue::QueueError> {
        self.queue
            .get_or_try_init(|| async {
                Ok(OpsQueue::from_connection(self.conn().await?, &self.prefix))
            })
            .await
            .cloned()
    }
}
