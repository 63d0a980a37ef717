//! Private PostgreSQL and Redis servers for fault tests: each test starts
//! its own on a free port and a temporary directory, so it can flush,
//! restart, pause (SIGSTOP) and kill them without disturbing other tests.
//!
//! PostgreSQL's server binaries are found under
//! `/usr/lib/postgresql/<newest version>/bin` (or `PG_BIN_DIR`); a root
//! process runs them as the `postgres` user, since `initdb` refuses root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

use crate::free_port;

/// A `redis-server` of one test: no persistence, so a restart loses
/// everything, as a Redis without a volume does.
pub struct PrivateRedis {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl PrivateRedis {
    pub async fn start() -> anyhow::Result<Self> {
        let mut redis = Self {
            port: free_port()?,
            dir: tempfile::tempdir()?,
            child: None,
        };
        redis.launch().await?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let log = std::fs::File::create(self.dir.path().join("redis.log"))?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting redis-server (is it installed?)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping().await.is_ok() {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "redis-server did not answer on port {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn ping(&self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await?;
        Ok(())
    }

    /// `FLUSHALL`: every key of every database goes.
    pub async fn flushall(&self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("FLUSHALL").query_async::<()>(&mut conn).await?;
        Ok(())
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts a new, empty one on the same port.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.launch().await
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A PostgreSQL cluster of one test (trust authentication, superuser
/// `postgres`, no fsync).
pub struct PrivatePostgres {
    port: u16,
    dir: TempDir,
    bin: PathBuf,
    run_as: Option<(u32, u32)>,
    settings: Vec<(String, String)>,
}

impl PrivatePostgres {
    /// `initdb` and start a cluster on a free port.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(&[]).await
    }

    /// Like [`PrivatePostgres::start`], with server settings (`-c name=value`)
    /// after the defaults, e.g. `[("max_connections", "6")]`.
    pub async fn start_with(settings: &[(&str, &str)]) -> anyhow::Result<Self> {
        let bin = server_bin_dir()?;
        let dir = tempfile::tempdir()?;
        let run_as = postgres_user_if_root()?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        let cluster = Self {
            port: free_port()?,
            dir,
            bin,
            run_as,
            settings: settings
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data_dir(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        cluster.pg_ctl_start()?;
        cluster.wait_ready(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of database `name` as the superuser.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` (an identifier the caller made safe); returns its URL.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        let mut conn = PgConnection::connect(&self.url("postgres")).await?;
        conn.execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await?;
        Ok(self.url(name))
    }

    /// Stops the cluster the way a crash does (`-m immediate`: every
    /// connection dropped at once) and starts it again on the same port.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
        )?;
        self.pg_ctl_start()?;
        self.wait_ready(Duration::from_secs(30)).await
    }

    /// Freezes the postmaster and every backend (SIGSTOP): connections stay
    /// open and queries hang, as on a host that stopped scheduling them.
    pub fn pause(&self) -> anyhow::Result<()> {
        let pids = self.pids()?;
        signal("STOP", &pids)
    }

    /// Lets a paused cluster run again (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        let pids = self.pids()?;
        signal("CONT", &pids)
    }

    /// The postmaster first, then its children.
    fn pids(&self) -> anyhow::Result<Vec<String>> {
        let pid_file = std::fs::read_to_string(Path::new(&self.data_dir()).join("postmaster.pid"))?;
        let postmaster = pid_file
            .lines()
            .next()
            .context("empty postmaster.pid")?
            .trim()
            .to_owned();
        let children = Command::new("pgrep").args(["-P", &postmaster]).output()?;
        let mut pids = vec![postmaster];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .split_whitespace()
                .map(str::to_owned),
        );
        Ok(pids)
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let mut options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off \
             -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        for (name, value) in &self.settings {
            options.push_str(&format!(" -c {name}={value}"));
        }
        let log = self.dir.path().join("postgres.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        )
    }

    async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            match PgConnection::connect(&self.url("postgres")).await {
                Ok(conn) => {
                    let _ = conn.close().await;
                    return Ok(());
                }
                Err(err) if Instant::now() >= deadline => {
                    bail!("PostgreSQL on port {} never answered: {err}", self.port)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Runs one of the server binaries (as `postgres` when this is root).
    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(tool);
        let mut command = match self.run_as {
            Some((uid, gid)) => {
                let mut command = Command::new("setpriv");
                command
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg(&program);
                command
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", program.display()))?;
        ensure!(
            output.status.success(),
            "{tool} {args:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // A paused cluster cannot stop; let it run first.
        let _ = self.resume();
        let _ = self.run(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", "immediate", "-w", "stop"],
        );
    }
}

fn signal(name: &str, pids: &[String]) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids)
        .status()?;
    ensure!(status.success(), "kill -{name} {pids:?} failed");
    Ok(())
}

/// `PG_BIN_DIR`, or the newest `/usr/lib/postgresql/<version>/bin` that
/// has `initdb`.
pub fn server_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .with_context(|| format!("no PostgreSQL server under {}", root.display()))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .with_context(|| format!("no {}/<version>/bin/initdb", root.display()))
}

/// The `postgres` user's uid and gid when this process is root.
fn postgres_user_if_root() -> anyhow::Result<Option<(u32, u32)>> {
    if id(&["-u"])? != 0 {
        return Ok(None);
    }
    Ok(Some((id(&["-u", "postgres"])?, id(&["-g", "postgres"])?)))
}

fn id(args: &[&str]) -> anyhow::Result<u32> {
    let output = Command::new("id").args(args).output()?;
    ensure!(output.status.success(), "id {args:?} failed");
    Ok(String::from_utf8_lossy(&output.stdout).trim().parse()?)
}
