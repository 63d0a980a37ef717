//! Real service processes for black-box tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now (bound and released at once).
///
/// Never the same port twice in one process: the kernel may hand a port just
/// released to the next `bind(0)`, and a test that asks for two ports (an
/// HTTP and an HTTPS listener) got one port twice and a server that would
/// not start.
pub fn free_port() -> anyhow::Result<u16> {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..100 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut handed_out = HANDED_OUT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if handed_out.insert(port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no port left that this process was not given already")
}

/// Polls `url` until it answers with any HTTP status, or `timeout` passes.
pub async fn wait_for_http(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        match client.get(url).send().await {
            Ok(_) => return Ok(()),
            Err(err) if Instant::now() >= deadline => {
                anyhow::bail!("{url} did not answer within {timeout:?}: {err}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A child process whose output goes to a log file; killed when dropped.
pub struct ServiceProcess {
    child: Child,
    log_path: PathBuf,
}

impl ServiceProcess {
    /// Starts `program args…` with only `env` (plus PATH and HOME) in its
    /// environment, so a developer's shell or `.env` cannot leak into a test.
    pub fn spawn(
        program: &Path,
        args: &[&str],
        env: &HashMap<String, String>,
    ) -> anyhow::Result<Self> {
        let log_path = std::env::temp_dir().join(format!(
            "saas-test-{}-{}.log",
            program
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("service"),
            crate::unique_suffix()
        ));
        let log = std::fs::File::create(&log_path)?;
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(env)
            .env("SAAS_NO_DOTENV", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for inherited in ["PATH", "HOME"] {
            if let Ok(value) = std::env::var(inherited) {
                command.env(inherited, value);
            }
        }
        let child = command.spawn()?;
        Ok(Self { child, log_path })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) with the system's `kill`.
    pub fn signal(&self, name: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -{name} failed");
        Ok(())
    }

    /// Waits for the process to exit, at most `timeout`.
    pub async fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "process did not exit within {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}
