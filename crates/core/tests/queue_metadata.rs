//! apalis leaves a metadata hash per queue consumer with no TTL; the reaper
//! removes those whose consumer apalis no longer counts, and keeps the live
//! ones (real Redis, own key prefix).

use redis::AsyncCommands as _;
use saas_core::ops::OpsQueue;
use saas_testkit::RedisPrefix;

#[tokio::test]
async fn metadata_of_gone_consumers_is_removed_and_live_ones_stay() -> anyhow::Result<()> {
    let prefix = RedisPrefix::new();
    let client = redis::Client::open(saas_testkit::redis_url())?;
    let queue = OpsQueue::connect(&client, &prefix).await?;
    let name = queue.queue_name();
    let mut conn = queue.connection();
    let metadata = |worker: &str| format!("{name}:workers:metadata:{worker}");
    // A live consumer: registered in apalis' workers set and with metadata.
    let _: () = conn
        .zadd(format!("{name}:workers"), "host-1-live-1", 1)
        .await?;
    let _: () = conn
        .hset(metadata("host-1-live-1"), "backend_name", "RedisStorage")
        .await?;
    // Consumers apalis forgot (expired, or of a worker that restarted).
    for gone in ["host-2-old-1", "host-1-live-0"] {
        let _: () = conn
            .hset(metadata(gone), "backend_name", "RedisStorage")
            .await?;
    }
    // Another installation's queue under another prefix is not ours.
    let other = RedisPrefix::new();
    let foreign = format!("{}operations:workers:metadata:host-9-x-1", other.0);
    let _: () = conn.hset(&foreign, "backend_name", "RedisStorage").await?;

    assert_eq!(queue.reap_consumer_metadata().await?, 2);
    let live: bool = conn.exists(metadata("host-1-live-1")).await?;
    let old: bool = conn.exists(metadata("host-2-old-1")).await?;
    let restarted: bool = conn.exists(metadata("host-1-live-0")).await?;
    let theirs: bool = conn.exists(&foreign).await?;
    assert!(live && !old && !restarted && theirs);
    assert_eq!(queue.reap_consumer_metadata().await?, 0);

    // A worker that stops cleanly takes its consumers with it.
    assert_eq!(queue.forget_consumers_of("host-1-live").await?, 1);
    let live: bool = conn.exists(metadata("host-1-live-1")).await?;
    let listed: Option<f64> = conn
        .zscore(format!("{name}:workers"), "host-1-live-1")
        .await?;
    assert!(!live && listed.is_none());
    Ok(())
}
