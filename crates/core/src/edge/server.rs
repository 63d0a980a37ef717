//! The accept loop every HTTP service runs instead of `axum::serve` (which
//! has no header timeout, no idle timeout and no connection cap: half-open
//! sockets once took a portal to "too many open files").

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::conn;
use super::limits::HttpLimits;

/// Serves `router` on `listener` within `limits` until `shutdown` resolves;
/// then stops accepting, lets requests in flight finish (idle connections
/// close at once), and returns after at most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    grace: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        // At the cap the next client waits in the listen backlog, not in a
        // file descriptor of ours.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(conn::serve(
            stream,
            peer,
            router.clone(),
            limits,
            stop_rx.clone(),
            slot,
        ));
    }
    drop(listener);
    tracing::info!("shutdown requested: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {grace:?}; exiting");
    }
    Ok(())
}

/// A failed `accept`: the client's own trouble (it reset the connection)
/// is skipped; anything else (out of file descriptors) is logged and
/// waited out briefly rather than retried in a busy loop.
async fn accept_failed(err: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(200)).await;
}
