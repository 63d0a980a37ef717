//! Sessions, throttling and API tokens against the real Redis and PostgreSQL.

use std::time::Duration;

use saas_core::auth::session::SessionStore;
use saas_core::auth::{throttle, tokens};
use saas_core::shared_redis::SharedRedis;
use saas_testkit::{TestDb, clear_redis_prefix, redis_prefix};
use uuid::Uuid;

fn redis(prefix: &str) -> anyhow::Result<SharedRedis> {
    Ok(SharedRedis::new(
        redis::Client::open(saas_testkit::redis_url())?,
        prefix,
    ))
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_their_absolute_limit() -> anyhow::Result<()> {
    let prefix = redis_prefix();
    let shared = redis(&prefix)?;
    let mut conn = shared.conn().await?;
    let store = SessionStore {
        prefix: format!("{prefix}session:"),
        idle: Duration::from_secs(1),
        absolute: Duration::from_secs(3),
    };
    let user = Uuid::new_v4();
    let (token, session) = store.create(&mut conn, user, true).await?;
    assert_eq!(store.load(&mut conn, &token).await?, Some(session.clone()));
    assert_eq!(store.load(&mut conn, "not-a-token").await?, None);
    // Used every 600 ms, it outlives the idle timeout...
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(store.load(&mut conn, &token).await?.is_some());
    }
    // ...but not its absolute lifetime, however often it is used.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let _ = store.load(&mut conn, &token).await?;
    }
    assert_eq!(store.load(&mut conn, &token).await?, None);
    // Left alone, it dies of idleness.
    let (idle_token, _) = store.create(&mut conn, user, true).await?;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(store.load(&mut conn, &idle_token).await?, None);
    // Logout ends it at once.
    let (gone, _) = store.create(&mut conn, user, true).await?;
    store.destroy(&mut conn, &gone).await?;
    assert_eq!(store.load(&mut conn, &gone).await?, None);
    clear_redis_prefix(&prefix).await
}

#[tokio::test]
async fn throttle_refuses_past_the_limit_with_retry_after() -> anyhow::Result<()> {
    let prefix = redis_prefix();
    let mut conn = redis(&prefix)?.conn().await?;
    let key = format!("{prefix}login:someone");
    for _ in 0..3 {
        assert!(
            throttle::hit(&mut conn, &key, 3, Duration::from_secs(60))
                .await?
                .is_ok()
        );
    }
    let refused = throttle::hit(&mut conn, &key, 3, Duration::from_secs(60)).await?;
    let Err(throttled) = refused else {
        panic!("fourth attempt allowed")
    };
    assert!(throttled.retry_after > Duration::from_secs(50));
    assert!(throttle::check(&mut conn, &key, 3).await?.is_err());
    throttle::reset(&mut conn, &key).await?;
    assert!(throttle::check(&mut conn, &key, 3).await?.is_ok());
    clear_redis_prefix(&prefix).await
}

#[tokio::test]
async fn api_tokens_are_shown_once_stored_hashed_and_revocable() -> anyhow::Result<()> {
    let db = TestDb::new("tokens").await?;
    let pool = db.pool().await?;
    saas_core::db::MIGRATOR.run(&pool).await?;
    let owner = Uuid::new_v4();
    let mut conn = pool.acquire().await?;
    let (token, secret) = tokens::create(&mut conn, tokens::Owner::Customer, owner, "ci").await?;
    assert!(secret.starts_with("osc_"));
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM api_tokens WHERE id = $1")
        .bind(token.id)
        .fetch_one(&pool)
        .await?;
    assert!(!stored.contains(&secret[4..]));
    assert_eq!(
        tokens::authenticate(&pool, tokens::Owner::Customer, &secret).await?,
        Some(owner)
    );
    assert_eq!(
        tokens::authenticate(&pool, tokens::Owner::Operator, &secret).await?,
        None
    );
    assert!(!tokens::revoke(&mut conn, tokens::Owner::Customer, Uuid::new_v4(), token.id).await?);
    assert!(tokens::revoke(&mut conn, tokens::Owner::Customer, owner, token.id).await?);
    assert_eq!(
        tokens::authenticate(&pool, tokens::Owner::Customer, &secret).await?,
        None
    );
    Ok(())
}

#[tokio::test]
async fn a_busy_token_records_its_last_use_at_most_once_a_minute() -> anyhow::Result<()> {
    let db = TestDb::new("token_use").await?;
    let pool = db.pool().await?;
    saas_core::db::MIGRATOR.run(&pool).await?;
    let owner = Uuid::new_v4();
    let mut conn = pool.acquire().await?;
    let (token, secret) = tokens::create(&mut conn, tokens::Owner::Customer, owner, "ci").await?;
    // The row version (xmin) changes with every UPDATE, even one writing
    // the same value: it shows whether a request wrote the row at all.
    let version = || async {
        sqlx::query_as::<_, (String, Option<chrono::DateTime<chrono::Utc>>)>(
            "SELECT xmin::text, last_used_at FROM api_tokens WHERE id = $1",
        )
        .bind(token.id)
        .fetch_one(&pool)
        .await
    };

    assert_eq!(
        tokens::authenticate(&pool, tokens::Owner::Customer, &secret).await?,
        Some(owner)
    );
    let first = version().await?;
    assert!(first.1.is_some(), "first use not recorded");
    for _ in 0..20 {
        assert_eq!(
            tokens::authenticate(&pool, tokens::Owner::Customer, &secret).await?,
            Some(owner)
        );
    }
    assert_eq!(
        version().await?,
        first,
        "the row was written again within the minute"
    );

    // A minute later the next request records its use again.
    sqlx::query("UPDATE api_tokens SET last_used_at = now() - interval '61 seconds' WHERE id = $1")
        .bind(token.id)
        .execute(&pool)
        .await?;
    let aged = version().await?.1;
    tokens::authenticate(&pool, tokens::Owner::Customer, &secret).await?;
    let renewed = version().await?.1;
    assert!(renewed > aged, "{renewed:?} should be later than {aged:?}");
    Ok(())
}

#[tokio::test]
async fn sign_in_throttle_spares_other_addresses_slows_then_refuses_the_account()
-> anyhow::Result<()> {
    use saas_core::auth::signin::{SignInLimits, SignInThrottle};
    let prefix = redis_prefix();
    let shared = redis(&prefix)?;
    let mut conn = shared.conn().await?;
    let throttle = SignInThrottle::new(
        format!("{prefix}signin:"),
        SignInLimits {
            per_pair: 3,
            per_address: 100,
            per_account: 9,
            slow_after: 4,
            notify_after: 5,
            window: Duration::from_secs(60),
        },
    );
    let ip = |last: u8| Some(std::net::IpAddr::from([127, 0, 0, last]));
    // One address: three attempts, then refused; another address is not.
    for _ in 0..3 {
        assert!(
            throttle
                .admit(&mut conn, "Owner@Example.com", ip(2))
                .await?
                .is_ok()
        );
        throttle.failed(&mut conn, "owner@example.com").await?;
    }
    assert!(
        throttle
            .admit(&mut conn, "owner@example.com", ip(2))
            .await?
            .is_err()
    );
    assert_eq!(
        throttle
            .admit(&mut conn, "owner@example.com", ip(3))
            .await?,
        Ok(Duration::ZERO)
    );
    // More failures from more addresses: slowed from the fourth, the owner
    // told exactly once (at the fifth), refused everywhere from the ninth.
    let mut told = 0;
    for (n, last) in (4u32..=9).zip(10u8..) {
        let failure = throttle.failed(&mut conn, "owner@example.com").await?;
        assert_eq!(failure.failures, n);
        told += u32::from(failure.tell_owner);
        let admitted = throttle
            .admit(&mut conn, "owner@example.com", ip(last))
            .await?;
        match n {
            4..=8 => assert!(admitted.is_ok_and(|delay| delay > Duration::ZERO), "{n}"),
            _ => assert!(admitted.is_err_and(|t| t.retry_after <= Duration::from_secs(60))),
        }
    }
    assert_eq!(told, 1);
    // A success resets only its own pair; the account's count stays.
    throttle
        .succeeded(&mut conn, "owner@example.com", ip(2))
        .await?;
    assert!(
        throttle
            .admit(&mut conn, "owner@example.com", ip(2))
            .await?
            .is_err()
    );
    // Other accounts are untouched.
    assert_eq!(
        throttle
            .admit(&mut conn, "other@example.com", ip(2))
            .await?,
        Ok(Duration::ZERO)
    );
    clear_redis_prefix(&prefix).await?;
    Ok(())
}
