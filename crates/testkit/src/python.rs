//! The Python tools some tests drive (schemathesis, aiosmtpd), pinned in
//! `.ci/python-tools.txt` and installed into one virtualenv by
//! `.ci/python-tools.sh`; [`tool`] runs that script first, so a test run
//! without `.ci/run` installs them too (once, under a lock).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, ensure};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The virtualenv holding the tools.
pub fn venv() -> PathBuf {
    std::env::var_os("ODOO_SAAS_PYTOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/odoo-saas/pytools"))
        })
        .unwrap_or_else(|| PathBuf::from("/tmp/odoo-saas-pytools"))
}

/// `bin/<name>` of the virtualenv, after making sure it is installed.
pub fn tool(name: &str) -> anyhow::Result<PathBuf> {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let output = Command::new("bash")
                .arg(repo_root().join(".ci/python-tools.sh"))
                .env("ODOO_SAAS_PYTOOLS", venv())
                .output()
                .map_err(|e| format!("cannot run .ci/python-tools.sh: {e}"))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(format!(
                    ".ci/python-tools.sh failed: {}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ))
            }
        })
        .clone()
        .map_err(anyhow::Error::msg)?;
    let path = venv().join("bin").join(name);
    ensure!(path.exists(), "{} is not installed", path.display());
    Ok(path)
}

/// A real SMTP server (aiosmtpd) on `port` that stores every message it
/// accepts as a file in `maildir/new`; stopped when dropped.
pub struct SmtpSink {
    pub port: u16,
    pub maildir: tempfile::TempDir,
    process: crate::ServiceProcess,
}

impl SmtpSink {
    pub async fn start() -> anyhow::Result<Self> {
        let python = tool("python")?;
        let port = crate::free_port()?;
        let maildir = tempfile::tempdir()?;
        let dir = maildir.path().join("mail");
        let process = crate::ServiceProcess::spawn(
            &python,
            &[
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
                "-c",
                "aiosmtpd.handlers.Mailbox",
                dir.to_str().context("temporary path is not UTF-8")?,
            ],
            &std::collections::HashMap::new(),
        )?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Self {
                    port,
                    maildir,
                    process,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        anyhow::bail!("aiosmtpd never listened; log:\n{}", process.log())
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, as raw text.
    pub fn messages(&self) -> anyhow::Result<Vec<String>> {
        let dir = self.maildir.path().join("mail/new");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(Vec::new());
        };
        let mut messages = Vec::new();
        for entry in entries {
            messages.push(std::fs::read_to_string(entry?.path())?);
        }
        Ok(messages)
    }

    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// One bounded schemathesis run against a live service.
pub struct Schemathesis<'a> {
    /// The service's base URL, e.g. `http://127.0.0.1:5001`.
    pub base: &'a str,
    /// The document's path on it, e.g. `/api/openapi.json`.
    pub schema_path: &'a str,
    /// A bearer token every request carries.
    pub bearer: &'a str,
    /// Test cases per operation.
    pub max_examples: u32,
    /// Schemathesis' own time budget for the whole run; the process is
    /// killed (and the test fails) a minute after it.
    pub max_time: std::time::Duration,
}

impl Schemathesis<'_> {
    /// Runs every check with `.ci/schemathesis.toml`; `Err` with the
    /// report when any check fails or the run overstays its budget.
    pub async fn run(&self) -> anyhow::Result<String> {
        let program = tool("schemathesis")?;
        let report = tempfile::tempdir()?;
        let mut command = tokio::process::Command::new(program);
        command
            .arg("--config-file")
            .arg(repo_root().join(".ci/schemathesis.toml"))
            .arg("--no-color")
            .arg("run")
            .arg(format!("{}{}", self.base, self.schema_path))
            .args(["--url", self.base])
            .args([
                "--header",
                &format!("Authorization: Bearer {}", self.bearer),
            ])
            .args(["--max-examples", &self.max_examples.to_string()])
            .args(["--max-time", &self.max_time.as_secs().max(1).to_string()])
            .args(["--checks", "all", "--seed", "20261201"])
            .args(["--generation-database", "none", "--request-timeout", "20"])
            // One worker: Hypothesis describes strategies through a cache that
            // is not safe across schemathesis' worker threads.
            .args(["--workers", "1"])
            .arg("--report-dir")
            .arg(report.path())
            // Its crash cache goes into the working directory.
            .current_dir(report.path())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .kill_on_drop(true);
        let limit = self.max_time + std::time::Duration::from_secs(60);
        let output = tokio::time::timeout(limit, command.output())
            .await
            .with_context(|| format!("schemathesis ran over {limit:?}"))??;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        ensure!(
            output.status.success(),
            "schemathesis failed ({}):\n{text}",
            output.status
        );
        Ok(text)
    }
}
