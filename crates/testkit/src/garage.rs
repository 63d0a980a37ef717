//! A private Garage (a production S3-compatible object store, the `garage`
//! crate) for one test: its own temporary directories and free ports, one
//! node with a 1 GB layout, a bucket and an access key made with Garage's
//! own CLI. It can be stopped (killed) and started again on the same data,
//! as an S3 endpoint that goes away mid-upload and comes back.
//!
//! The binary is `GARAGE_BIN`, else `garage` on `PATH`, else
//! `~/.cargo/bin/garage` (`.ci/run` installs it there with `cargo install`).
//! [`PrivateGarage::start_if_installed`] returns `None` when there is none,
//! so a developer without it sees the test say so; CI always has it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use tempfile::TempDir;

use crate::free_port;

/// The region Garage answers for.
pub const REGION: &str = "garage";

/// One test's Garage server.
pub struct PrivateGarage {
    bin: PathBuf,
    dir: TempDir,
    s3_port: u16,
    child: Option<Child>,
    key_id: String,
    secret: String,
}

/// Where the `garage` binary is, if anywhere.
pub fn garage_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("GARAGE_BIN") {
        return Some(PathBuf::from(bin));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("garage"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("HOME")?;
        let candidate = Path::new(&home).join(".cargo/bin/garage");
        candidate.is_file().then_some(candidate)
    })
}

impl PrivateGarage {
    /// A running Garage with bucket `bucket`, or `None` (after saying so on
    /// stderr) when no `garage` binary is installed.
    pub async fn start_if_installed(bucket: &str) -> anyhow::Result<Option<Self>> {
        let Some(bin) = garage_bin() else {
            eprintln!(
                "SKIPPED: no garage binary (GARAGE_BIN, PATH, ~/.cargo/bin); install it with \
                 `cargo install garage --version 2.5.0 --locked --no-default-features --features bundled-libs,sqlite`"
            );
            return Ok(None);
        };
        Self::start(bin, bucket).await.map(Some)
    }

    pub async fn start(bin: PathBuf, bucket: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (rpc, s3_port, admin) = (free_port()?, free_port()?, free_port()?);
        let secret: String = (0..32)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        let config = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
        );
        std::fs::write(dir.path().join("garage.toml"), config)?;
        let mut garage = Self {
            bin,
            dir,
            s3_port,
            child: None,
            key_id: String::new(),
            secret: String::new(),
        };
        garage.launch().await?;
        let node = garage.cli(&["node", "id", "-q"]).await?;
        let node = node
            .trim()
            .split('@')
            .next()
            .filter(|id| !id.is_empty())
            .context("garage node id printed no id")?
            .to_owned();
        garage
            .cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])
            .await?;
        garage.cli(&["layout", "apply", "--version", "1"]).await?;
        let key = garage.cli(&["key", "create", "tests"]).await?;
        garage.key_id = field(&key, "Key ID").context("no key id in `garage key create`")?;
        garage.secret = field(&key, "Secret key").context("no secret in `garage key create`")?;
        garage.create_bucket(bucket).await?;
        Ok(garage)
    }

    /// Creates `bucket`, readable and writable with the test key.
    pub async fn create_bucket(&self, bucket: &str) -> anyhow::Result<()> {
        self.cli(&["bucket", "create", bucket]).await?;
        self.cli(&[
            "bucket", "allow", "--read", "--write", "--owner", bucket, "--key", "tests",
        ])
        .await?;
        Ok(())
    }

    /// `http://127.0.0.1:<port>`, the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The variables a service needs to use `s3://<bucket>/<prefix>` here
    /// as `store_var` (`BACKUP_STORE_URL` or `BACKUP_REPLICA_URL`).
    pub fn env(&self, store_var: &str, bucket: &str, prefix: &str) -> Vec<(String, String)> {
        vec![
            (store_var.to_owned(), format!("s3://{bucket}/{prefix}")),
            ("S3_ENDPOINT".to_owned(), self.endpoint()),
            ("S3_REGION".to_owned(), REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID".to_owned(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), self.secret.clone()),
            // A stopped server makes a request fail within seconds.
            ("S3_RETRY_TIMEOUT_SECS".to_owned(), "3".to_owned()),
        ]
    }

    /// Kills the server (as a crash would); [`PrivateGarage::restart`]
    /// brings it back on the same data and port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.launch().await
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("garage.log"))?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_ok()
                && self.cli(&["status"]).await.is_ok()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("garage exited ({status}): {}", self.log_tail());
            }
            ensure!(
                Instant::now() < deadline,
                "garage did not answer on port {}: {}",
                self.s3_port,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default();
        let start = log.len().saturating_sub(2000);
        log.get(start..).unwrap_or_default().to_owned()
    }

    /// Runs `garage -c <config> <args>` against this server; its stdout.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = tokio::process::Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .args(args)
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .output()
            .await
            .with_context(|| format!("running garage {args:?}"))?;
        ensure!(
            out.status.success(),
            "garage {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for PrivateGarage {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The value after `name:` on a line of Garage's CLI output.
fn field(output: &str, name: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let (label, value) = line.split_once(':')?;
        (label.trim() == name)
            .then(|| value.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_key_garage_prints() {
        let out = "==== ACCESS KEY INFORMATION ====\nKey ID:              GK31c2f218a2e44f485b94239e\nKey name:            tests\nSecret key:          b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f9d769d67f16c3835\n";
        assert_eq!(
            super::field(out, "Key ID").as_deref(),
            Some("GK31c2f218a2e44f485b94239e")
        );
        assert!(super::field(out, "Secret key").is_some_and(|s| s.len() == 64));
        assert!(super::field(out, "Missing").is_none());
    }
}
