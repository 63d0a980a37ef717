//! Server-side sessions in Redis. The cookie holds a random token; Redis
//! holds the session under the token's SHA-256, with an idle timeout that
//! each use renews and an absolute timeout that nothing renews.

use std::time::Duration;

use chrono::Utc;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{random_token, sha256_hex};

/// One signed-in user's session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub user_id: Uuid,
    /// The token every state-changing form and request must echo.
    pub csrf_token: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Whether the second factor, when the account has one, was given.
    pub mfa_passed: bool,
}

/// Where sessions of one service live and how long they last.
#[derive(Clone)]
pub struct SessionStore {
    /// Key prefix, e.g. `saas:admin:session:`.
    pub prefix: String,
    pub idle: Duration,
    pub absolute: Duration,
}

impl SessionStore {
    fn key(&self, token: &str) -> String {
        format!("{}{}", self.prefix, sha256_hex(token))
    }

    /// Starts a session; returns the cookie token and the session.
    pub async fn create(
        &self,
        conn: &mut ConnectionManager,
        user_id: Uuid,
        mfa_passed: bool,
    ) -> redis::RedisResult<(String, Session)> {
        let token = random_token(32);
        let session = Session {
            user_id,
            csrf_token: random_token(32),
            created_at: Utc::now().timestamp(),
            mfa_passed,
        };
        self.save(conn, &token, &session).await?;
        Ok((token, session))
    }

    /// Stores `session` under `token` with the time it has left.
    pub async fn save(
        &self,
        conn: &mut ConnectionManager,
        token: &str,
        session: &Session,
    ) -> redis::RedisResult<()> {
        let Some(ttl) = self.remaining(session) else {
            return self.destroy(conn, token).await;
        };
        let payload = serde_json::to_string(session).unwrap_or_default();
        conn.set_ex(self.key(token), payload, ttl.as_secs().max(1))
            .await
    }

    fn remaining(&self, session: &Session) -> Option<Duration> {
        let age = u64::try_from(Utc::now().timestamp() - session.created_at).unwrap_or(0);
        let left = self.absolute.as_secs().checked_sub(age)?;
        (left > 0).then(|| Duration::from_secs(left.min(self.idle.as_secs())))
    }

    /// The live session for `token`, renewing its idle timeout; `None` when
    /// unknown, idle too long or past its absolute lifetime.
    pub async fn load(
        &self,
        conn: &mut ConnectionManager,
        token: &str,
    ) -> redis::RedisResult<Option<Session>> {
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let payload: Option<String> = conn.get(self.key(token)).await?;
        let Some(session) = payload.and_then(|p| serde_json::from_str::<Session>(&p).ok()) else {
            return Ok(None);
        };
        match self.remaining(&session) {
            Some(ttl) => {
                let _: bool = conn
                    .expire(self.key(token), i64::try_from(ttl.as_secs()).unwrap_or(1))
                    .await?;
                Ok(Some(session))
            }
            None => {
                self.destroy(conn, token).await?;
                Ok(None)
            }
        }
    }

    pub async fn destroy(
        &self,
        conn: &mut ConnectionManager,
        token: &str,
    ) -> redis::RedisResult<()> {
        conn.del(self.key(token)).await
    }
}
