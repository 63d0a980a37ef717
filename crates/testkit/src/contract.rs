//! The behaviour every service binary shares, checked against the real
//! process: health endpoints, readiness, metrics, configuration errors,
//! port conflicts and graceful shutdown. Each binary's tests call these.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::{ServiceProcess, TestDb, free_port};

/// The `SECRET_KEY` every service under test gets. A worker must have the one
/// of the portal or admin it serves: it opens the passwords they seal with a
/// key derived from it.
pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdef-0123";

/// A service binary under test.
#[derive(Debug, Clone)]
pub struct Binary {
    pub path: PathBuf,
    /// The variable that sets its port, e.g. `ADMIN_PORT`.
    pub port_var: &'static str,
    /// Variables this binary gets besides the common ones.
    pub extra: Vec<(String, String)>,
}

impl Binary {
    pub fn new(path: &str, port_var: &'static str) -> Self {
        Self {
            path: PathBuf::from(path),
            port_var,
            extra: Vec::new(),
        }
    }

    /// The same binary, also given `name=value`.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.extra.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A complete, valid environment for this binary on `port` against `db`.
    pub fn env(&self, db: &TestDb, port: u16) -> HashMap<String, String> {
        HashMap::from([
            ("DATABASE_URL".to_owned(), db.url.clone()),
            ("REDIS_URL".to_owned(), crate::redis_url()),
            ("SECRET_KEY".to_owned(), SECRET_KEY.to_owned()),
            ("BIND_ADDR".to_owned(), "127.0.0.1".to_owned()),
            (self.port_var.to_owned(), port.to_string()),
            (
                "METRICS_PORT".to_owned(),
                free_port().unwrap_or(0).to_string(),
            ),
            ("SCHEMA_WAIT_SECS".to_owned(), "10".to_owned()),
            ("LOG_LEVEL".to_owned(), "info".to_owned()),
        ])
        .into_iter()
        .chain(self.extra.iter().cloned())
        .collect()
    }

    /// Starts the binary with `env` and waits until `/healthz` answers.
    pub async fn start(
        &self,
        env: &HashMap<String, String>,
    ) -> anyhow::Result<(ServiceProcess, String)> {
        let port = env
            .get(self.port_var)
            .context("env has no port")?
            .parse::<u16>()?;
        let mut process = ServiceProcess::spawn(&self.path, &[], env)?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                return Ok((process, base));
            }
            if let Ok(status) = process.wait(Duration::from_millis(50)).await {
                anyhow::bail!("exited early with {status}; log:\n{}", process.log());
            }
        }
        anyhow::bail!("never answered /healthz; log:\n{}", process.log())
    }

    /// Whether the binary serves `/metrics` on its own `METRICS_PORT` (admin
    /// and portal) rather than on its only port (the worker).
    pub fn metrics_apart(&self) -> bool {
        self.port_var != "WORKER_PORT"
    }

    /// Where `/metrics` of the binary started with `env` answers.
    pub fn metrics_base(&self, env: &HashMap<String, String>) -> anyhow::Result<String> {
        let var = if self.metrics_apart() {
            "METRICS_PORT"
        } else {
            self.port_var
        };
        let port = env.get(var).with_context(|| format!("env has no {var}"))?;
        Ok(format!("http://127.0.0.1:{port}"))
    }
}

/// `/healthz` 200, `/readyz` 200, and `/metrics` counting the request made;
/// for admin and portal `/metrics` only on the internal `METRICS_PORT`, and
/// 404 on the public port.
pub async fn health_ready_metrics(bin: &Binary, db: &TestDb) -> anyhow::Result<()> {
    let env = bin.env(db, free_port()?);
    let (_process, base) = bin.start(&env).await?;
    let internal = bin.metrics_base(&env)?;
    let client = reqwest::Client::new();
    if bin.metrics_apart() {
        let public = client.get(format!("{base}/metrics")).send().await?;
        ensure!(
            public.status() == 404,
            "/metrics on the public port answered {}",
            public.status()
        );
    }
    let health = client.get(format!("{base}/healthz")).send().await?;
    ensure!(health.status() == 200, "healthz: {}", health.status());
    ensure!(
        health.headers().contains_key("x-request-id"),
        "no request id header"
    );
    let ready = client.get(format!("{base}/readyz")).send().await?;
    let status = ready.status();
    let body = ready.text().await?;
    ensure!(status == 200, "readyz: {status} {body}");
    let metrics = client
        .get(format!("{internal}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let counter = r#"http_requests_total{method="GET",route="/healthz",status="200"}"#;
    ensure!(metrics.contains(counter), "no {counter} in:\n{metrics}");
    ensure!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "no latency histogram"
    );
    ensure!(
        metrics.contains("process_resident_memory_bytes"),
        "no process metrics"
    );
    ensure!(
        metrics.contains("service_ready 1"),
        "service_ready not 1:\n{metrics}"
    );
    // An unknown path is counted under a fixed label, never its raw path.
    client
        .get(format!("{base}/no/such/path/12345"))
        .send()
        .await?;
    let metrics = client
        .get(format!("{internal}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(!metrics.contains("12345"), "raw path leaked into labels");
    ensure!(
        metrics.contains(r#"route="unmatched""#),
        "unmatched route not labelled"
    );
    Ok(())
}

/// `/readyz` answers 503 naming Redis when `REDIS_URL` points at a closed port.
pub async fn readyz_names_unreachable_redis(bin: &Binary, db: &TestDb) -> anyhow::Result<()> {
    let mut env = bin.env(db, free_port()?);
    env.insert(
        "REDIS_URL".to_owned(),
        format!("redis://127.0.0.1:{}/0", free_port()?),
    );
    let (_process, base) = bin.start(&env).await?;
    let response = reqwest::get(format!("{base}/readyz")).await?;
    ensure!(response.status() == 503, "readyz: {}", response.status());
    let body: serde_json::Value = response.json().await?;
    // Redis first; what depends on it (the worker's queue) may follow.
    ensure!(
        body["failed"].get(0) == Some(&serde_json::json!("redis"))
            && !body["failed"]
                .as_array()
                .is_some_and(|failed| failed.contains(&serde_json::json!("postgres"))),
        "body: {body}"
    );
    ensure!(body["checks"]["postgres"]["ok"] == true, "body: {body}");
    Ok(())
}

/// Missing or malformed configuration exits 2 naming the variable, and a
/// password in a URL is never printed.
pub async fn bad_config_exits_2(bin: &Binary, db: &TestDb) -> anyhow::Result<()> {
    let valid = bin.env(db, free_port()?);
    let password_url = "postgres://saas:Sup3rS3cretPw@127.0.0.1:5432/platform";
    let cases: Vec<(&str, Option<String>)> = vec![
        ("DATABASE_URL", None),
        ("REDIS_URL", Some("}redis:6379".to_owned())),
        (bin.port_var, Some("abc".to_owned())),
        (
            "DATABASE_URL",
            Some(password_url.replace("postgres://", "mysql://")),
        ),
        ("SECRET_KEY", Some("short".to_owned())),
        // More connections than the process may open files.
        ("HTTP_MAX_CONNECTIONS", Some("100000000".to_owned())),
        ("HTTP_HEADER_TIMEOUT_SECS", Some("0".to_owned())),
        ("TRUSTED_PROXIES", Some("nginx".to_owned())),
        ("PUBLIC_PORT", Some("99999".to_owned())),
    ];
    for (var, value) in cases {
        let mut env = valid.clone();
        match &value {
            Some(value) => env.insert(var.to_owned(), value.clone()),
            None => env.remove(var),
        };
        let mut process = ServiceProcess::spawn(&bin.path, &[], &env)?;
        let status = process.wait(Duration::from_secs(10)).await?;
        let log = process.log();
        ensure!(
            status.code() == Some(2),
            "{var}={value:?}: exit {status}; log:\n{log}"
        );
        let line = format!("config error: {var}: expected");
        ensure!(log.contains(&line), "{var}: no {line:?} in:\n{log}");
        ensure!(
            log.trim().lines().count() == 1,
            "{var}: more than one line:\n{log}"
        );
        ensure!(
            !log.contains("Sup3rS3cretPw"),
            "{var}: secret printed:\n{log}"
        );
    }
    Ok(())
}

/// Reads from `stream` until the server closes it; how long that took, or
/// an error when it sent anything (it must just hang up) or kept it open
/// past `limit`.
async fn closed_within(
    stream: &mut tokio::net::tcp::OwnedReadHalf,
    started: Instant,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(limit, stream.read(&mut buf)).await {
        Err(_) => anyhow::bail!("still open after {limit:?}"),
        Ok(Ok(0)) | Ok(Err(_)) => Ok(started.elapsed()),
        Ok(Ok(n)) => anyhow::bail!(
            "the server answered instead of hanging up: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
}

/// Reads one whole `Connection: keep-alive` answer to `GET /healthz`.
async fn read_answer(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await??;
        ensure!(n > 0, "closed before the answer was complete");
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                return Ok(text);
            }
        }
    }
}

/// Slow and idle clients cannot hold the service: a request head trickled
/// a byte at a time (slowloris) is cut off `HTTP_HEADER_TIMEOUT_SECS` after
/// its first byte, a kept-alive or silent connection after
/// `HTTP_IDLE_TIMEOUT_SECS`, and past `HTTP_MAX_CONNECTIONS` a new client
/// waits in the listen backlog (no file descriptor of the service) until a
/// slot frees, then is served.
pub async fn slow_clients_are_cut_off(bin: &Binary, db: &TestDb) -> anyhow::Result<()> {
    const HEADER_SECS: u64 = 2;
    const IDLE_SECS: u64 = 5;
    let mut env = bin.env(db, free_port()?);
    env.insert("HTTP_HEADER_TIMEOUT_SECS".into(), HEADER_SECS.to_string());
    env.insert("HTTP_IDLE_TIMEOUT_SECS".into(), IDLE_SECS.to_string());
    env.insert("HTTP_MAX_CONNECTIONS".into(), "4".into());
    let (process, base) = bin.start(&env).await?;
    let address = base.trim_start_matches("http://").to_owned();
    // start() probed /healthz; let its connection go idle and close.
    tokio::time::sleep(Duration::from_secs(IDLE_SECS + 1)).await;

    // Slowloris: a header byte every 300 ms, for as long as the server listens.
    let (mut read, mut write) = TcpStream::connect(&address).await?.into_split();
    let started = Instant::now();
    write
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await?;
    let trickle = tokio::spawn(async move {
        while write.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let took = closed_within(&mut read, started, Duration::from_secs(HEADER_SECS + 4)).await;
    trickle.abort();
    let took = took.context("slowloris")?;
    ensure!(
        took >= Duration::from_millis(HEADER_SECS * 1000 - 300),
        "slow head cut off too early: {took:?}"
    );

    // A kept-alive connection, after one answer, closes once idle.
    let mut kept = TcpStream::connect(&address).await?;
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await?;
    let answer = read_answer(&mut kept).await?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (mut read, _write) = kept.into_split();
    let idle = closed_within(
        &mut read,
        Instant::now(),
        Duration::from_secs(IDLE_SECS + 4),
    )
    .await
    .context("idle keep-alive")?;
    ensure!(
        idle >= Duration::from_secs(IDLE_SECS) - Duration::from_millis(500),
        "idle connection closed after {idle:?}, before HTTP_IDLE_TIMEOUT_SECS"
    );

    // Four silent connections take every slot: a fifth client is not
    // served until the idle timeout frees them, and then it is.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(&address).await?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let filled = Instant::now();
    let mut fifth = TcpStream::connect(&address).await?;
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut first = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_secs(2), fifth.read(&mut first)).await;
    ensure!(early.is_err(), "served past HTTP_MAX_CONNECTIONS");
    let answer = read_answer(&mut fifth).await;
    let waited = filled.elapsed();
    let answer = answer?;
    ensure!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    ensure!(
        waited >= Duration::from_secs(IDLE_SECS) - Duration::from_secs(1)
            && waited <= Duration::from_secs(IDLE_SECS + 3),
        "the fifth client waited {waited:?}"
    );
    for mut socket in silent {
        let mut buf = [0u8; 16];
        let closed = tokio::time::timeout(Duration::from_secs(1), socket.read(&mut buf)).await;
        ensure!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "a silent connection is still open: {closed:?}"
        );
    }
    drop(process);
    Ok(())
}

/// A port already taken fails start-up with a line naming the port variable.
pub async fn port_in_use_is_named(bin: &Binary, db: &TestDb) -> anyhow::Result<()> {
    let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port();
    let mut process = ServiceProcess::spawn(&bin.path, &[], &bin.env(db, port))?;
    let status = process.wait(Duration::from_secs(20)).await?;
    let log = process.log();
    ensure!(!status.success(), "started on a taken port");
    let expected = format!("port {port} on 127.0.0.1 is already in use");
    ensure!(log.contains(&expected), "no {expected:?} in:\n{log}");
    ensure!(
        log.contains(&format!("set {} to a free port", bin.port_var)),
        "{log}"
    );
    Ok(())
}

/// SIGTERM while a request is in flight: the request still gets its answer
/// and the process exits 0 within 10 s.
///
/// The slow request is a real one: `/readyz` against a "Redis" that accepts
/// connections and never answers, so the check waits for its timeout.
pub async fn sigterm_drains_slow_request(bin: &Binary, db: &TestDb) -> anyhow::Result<()> {
    let silent_redis = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let silent_port = silent_redis.local_addr()?.port();
    let hold_open = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = silent_redis.accept().await {
            // Read and never answer.
            held.push(tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
            }));
        }
    });
    let mut env = bin.env(db, free_port()?);
    env.insert(
        "REDIS_URL".to_owned(),
        format!("redis://127.0.0.1:{silent_port}/0"),
    );
    let (mut process, base) = bin.start(&env).await?;
    let slow = tokio::spawn(async move { reqwest::get(format!("{base}/readyz")).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    ensure!(!slow.is_finished(), "the request was not slow");
    process.signal("TERM")?;
    let response = slow.await??;
    ensure!(
        response.status() == 503,
        "slow request answered {}",
        response.status()
    );
    let status = process.wait(Duration::from_secs(10)).await?;
    ensure!(status.success(), "exit {status}; log:\n{}", process.log());
    hold_open.abort();
    Ok(())
}

/// On an unmigrated database the service waits (with a log line) for the
/// schema, starts once it appears, and gives up with a clear line when it
/// never does.
pub async fn waits_for_schema<F, Fut>(bin: &Binary, migrate: F) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let never = TestDb::new("noschema").await?;
    let mut env = bin.env(&never, free_port()?);
    env.insert("SCHEMA_WAIT_SECS".to_owned(), "1".to_owned());
    let mut process = ServiceProcess::spawn(&bin.path, &[], &env)?;
    let status = process.wait(Duration::from_secs(15)).await?;
    let log = process.log();
    ensure!(status.code() == Some(1), "exit {status}; log:\n{log}");
    ensure!(
        log.contains("schema") && log.contains("SCHEMA_WAIT_SECS"),
        "{log}"
    );

    let later = TestDb::new("lateschema").await?;
    let env = bin.env(&later, free_port()?);
    let port = env.get(bin.port_var).context("env has no port")?;
    let base = format!("http://127.0.0.1:{port}");
    let process = ServiceProcess::spawn(&bin.path, &[], &env)?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ensure!(
        process.log().contains("waiting for admin to migrate"),
        "{}",
        process.log()
    );
    ensure!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "served before the schema existed"
    );
    migrate(later.url.clone()).await?;
    crate::wait_for_http(&format!("{base}/healthz"), Duration::from_secs(10)).await?;
    let ready = reqwest::get(format!("{base}/readyz")).await?;
    ensure!(
        ready.status() == 200,
        "readyz after migration: {}",
        ready.status()
    );
    Ok(())
}

/// An unreachable PostgreSQL stops start-up with a line naming its host,
/// port and the variable to fix.
pub async fn unreachable_database_is_named(bin: &Binary, db: &TestDb) -> anyhow::Result<()> {
    let closed = free_port()?;
    let mut env = bin.env(db, free_port()?);
    env.insert(
        "DATABASE_URL".to_owned(),
        format!("postgres://saas:Sup3rS3cretPw@127.0.0.1:{closed}/platform"),
    );
    env.insert("SCHEMA_WAIT_SECS".to_owned(), "1".to_owned());
    let mut process = ServiceProcess::spawn(&bin.path, &[], &env)?;
    let status = process.wait(Duration::from_secs(20)).await?;
    let log = process.log();
    ensure!(status.code() == Some(1), "exit {status}; log:\n{log}");
    let expected = format!("cannot reach PostgreSQL at 127.0.0.1:{closed} (DATABASE_URL)");
    ensure!(log.contains(&expected), "no {expected:?} in:\n{log}");
    ensure!(!log.contains("Sup3rS3cretPw"), "password printed:\n{log}");
    Ok(())
}
