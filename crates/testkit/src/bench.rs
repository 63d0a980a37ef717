//! What the bench programs share: a CPU load beside the measurement, wrk
//! runs, the minimal axum handler that an API is compared with, and RQ 3
//! (the replaced stack's queue) in a virtual environment of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, ensure};

/// One busy-looping process per core while it lives: the "loaded machine"
/// of the benchmarks. A loop of the shell uses a core fully, like a compiler
/// does, and needs no memory or disk, so runs are comparable.
pub struct CpuLoad {
    children: Vec<Child>,
}

impl CpuLoad {
    pub fn start() -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let mut children = Vec::with_capacity(cores);
        for _ in 0..cores {
            children.push(
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdin(Stdio::null())
                    .spawn()
                    .context("start a busy loop")?,
            );
        }
        Ok(Self { children })
    }

    pub fn processes(&self) -> usize {
        self.children.len()
    }
}

impl Drop for CpuLoad {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What `wrk --latency` reported.
#[derive(Debug, Clone)]
pub struct Wrk {
    pub requests_per_sec: f64,
    pub p50: String,
    pub p99: String,
    /// `none`, or wrk's "Non-2xx or 3xx responses: N" line.
    pub errors: String,
}

/// `wrk -t2 -c<connections> -d<seconds>s --latency` against `url` with the
/// given headers.
pub fn wrk(url: &str, headers: &[String], connections: u32, seconds: u32) -> anyhow::Result<Wrk> {
    let mut command = Command::new("wrk");
    command.args([
        "-t2".to_owned(),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        "--latency".to_owned(),
    ]);
    for header in headers {
        command.arg("-H").arg(header);
    }
    let output = command
        .arg(url)
        .output()
        .context("wrk is not installed (apt-get install wrk)")?;
    ensure!(
        output.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str, column: usize| {
        report
            .lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(column))
            .map(str::to_owned)
    };
    let requests_per_sec = field("Requests/sec:", 1)
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no Requests/sec in wrk's report:\n{report}"))?;
    Ok(Wrk {
        requests_per_sec,
        p50: field("50%", 1).unwrap_or_else(|| "?".into()),
        p99: field("99%", 1).unwrap_or_else(|| "?".into()),
        errors: report
            .lines()
            .find(|l| l.contains("Non-2xx"))
            .map_or_else(|| "none".to_owned(), |l| l.trim().to_owned()),
    })
}

/// The floor an API is measured against: axum on the same runtime answering
/// `GET /` with a fixed JSON body of `body_bytes` bytes, no database, no
/// middleware. Serves on a free loopback port until the runtime ends.
pub async fn floor_server(body_bytes: usize) -> anyhow::Result<String> {
    let body = format!(
        "{{\"items\":\"{}\"}}",
        "x".repeat(body_bytes.saturating_sub(12))
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let body = body.clone();
            async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

/// The workspace's `target` directory (or `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    )
}

/// The Python of a virtual environment under `target/bench-rq` with
/// `bench/rq/requirements.txt` installed (created on first use).
pub fn rq_python() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let requirements = root.join("bench/rq/requirements.txt");
    let venv = target_dir().join("bench-rq");
    let python = venv.join("bin/python");
    let stamp = venv.join("installed.txt");
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("read {}", requirements.display()))?;
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .context("python3 -m venv")?;
        ensure!(
            status.success(),
            "python3 -m venv {} failed",
            venv.display()
        );
        let status = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "-r"])
            .arg(&requirements)
            .status()
            .context("pip install")?;
        ensure!(
            status.success(),
            "pip install -r {} failed",
            requirements.display()
        );
        std::fs::write(&stamp, wanted)?;
    }
    Ok(python)
}

/// Runs `bench/rq/rq_bench.py` (RQ 3 SimpleWorker, `count` no-op jobs from
/// `producers` threads) against `redis_url` and returns its JSON report.
pub fn rq_bench(
    redis_url: &str,
    count: usize,
    producers: usize,
) -> anyhow::Result<serde_json::Value> {
    let python = rq_python()?;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/rq");
    let output = Command::new(python)
        .arg("rq_bench.py")
        .arg(redis_url)
        .arg(count.to_string())
        .arg(producers.to_string())
        .current_dir(&dir)
        .stderr(Stdio::inherit())
        .output()
        .context("run bench/rq/rq_bench.py")?;
    ensure!(output.status.success(), "rq_bench.py failed");
    serde_json::from_slice(&output.stdout).context("rq_bench.py printed no JSON")
}

/// An API measured under wrk next to the minimal axum handler answering a
/// body of the same size, on the idle machine and with [`CpuLoad`] beside.
#[derive(Debug, Clone)]
pub struct FloorComparison {
    pub body_bytes: usize,
    pub idle: Wrk,
    pub floor_idle: Wrk,
    pub loaded: Wrk,
    pub floor_loaded: Wrk,
    pub busy_processes: usize,
}

impl FloorComparison {
    /// One Markdown table row: `| name | api idle | floor idle | share | api loaded | floor loaded | share |`.
    pub fn row(&self, name: &str) -> String {
        let share = |api: &Wrk, floor: &Wrk| {
            format!(
                "{:.0} %",
                100.0 * api.requests_per_sec / floor.requests_per_sec
            )
        };
        format!(
            "| {name} | {:.0} req/s (p99 {}) | {:.0} req/s (p99 {}) | {} | {:.0} req/s (p99 {}) | {:.0} req/s (p99 {}) | {} |\n",
            self.idle.requests_per_sec,
            self.idle.p99,
            self.floor_idle.requests_per_sec,
            self.floor_idle.p99,
            share(&self.idle, &self.floor_idle),
            self.loaded.requests_per_sec,
            self.loaded.p99,
            self.floor_loaded.requests_per_sec,
            self.floor_loaded.p99,
            share(&self.loaded, &self.floor_loaded),
        )
    }

    /// The table header for [`Self::row`].
    pub const HEADER: &'static str = "| API | idle | minimal axum handler, idle | share of the floor | loaded | minimal axum handler, loaded | share of the floor |\n|---|---|---|---|---|---|---|\n";
}

/// Measures `url` (sent with `headers`, `Name: value`) and the floor under
/// `wrk -t2 -c<connections> -d<seconds>s`, idle and loaded. Fails when the
/// API answers anything but 2xx under load.
pub async fn compare_with_floor(
    url: &str,
    headers: &[String],
    connections: u32,
    seconds: u32,
) -> anyhow::Result<FloorComparison> {
    let mut request = reqwest::Client::new().get(url);
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("header {header:?} is not `Name: value`"))?;
        request = request.header(name.trim(), value.trim());
    }
    let response = request.send().await?;
    ensure!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    let body_bytes = response.bytes().await?.len();
    let floor = floor_server(body_bytes).await?;
    let run = |target: String, headers: Vec<String>| {
        tokio::task::spawn_blocking(move || wrk(&target, &headers, connections, seconds))
    };
    let idle = run(url.to_owned(), headers.to_vec()).await??;
    let floor_idle = run(floor.clone(), Vec::new()).await??;
    let load = CpuLoad::start()?;
    let loaded = run(url.to_owned(), headers.to_vec()).await??;
    let floor_loaded = run(floor, Vec::new()).await??;
    let busy_processes = load.processes();
    drop(load);
    for measured in [&idle, &loaded] {
        ensure!(
            measured.errors == "none",
            "{url} under wrk: {}",
            measured.errors
        );
    }
    Ok(FloorComparison {
        body_bytes,
        idle,
        floor_idle,
        loaded,
        floor_loaded,
        busy_processes,
    })
}

/// The `main` of a bench program: runs `bench` on a multi-threaded runtime
/// and reports its error; does nothing when the harness only lists benches
/// (`cargo test --benches` and nextest pass `--list`).
pub fn main<F>(bench: impl FnOnce() -> F) -> std::process::ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    if std::env::args().any(|a| a == "--list") {
        return std::process::ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("benchmark failed: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
