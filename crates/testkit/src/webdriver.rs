//! A minimal W3C WebDriver client over reqwest, driving headless Chromium
//! through the Debian `chromedriver` (lighter than a full client crate).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::{ServiceProcess, free_port, wait_for_http};
use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `chromium` and `chromedriver`, or `None` with a message (an error when
/// `CI` is set: CI installs them with `.ci/browser-tools.sh`).
pub fn tools() -> anyhow::Result<Option<(String, String)>> {
    let find = |names: &[&str]| {
        names.iter().find_map(|n| {
            ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"]
                .iter()
                .map(|d| Path::new(d).join(n))
                .find(|p| p.exists())
                .map(|p| p.to_string_lossy().into_owned())
        })
    };
    match (
        find(&["chromium", "chromium-browser"]),
        find(&["chromedriver"]),
    ) {
        (Some(browser), Some(driver)) => Ok(Some((browser, driver))),
        _ if std::env::var_os("CI").is_some() => {
            bail!("chromium/chromedriver missing in CI: run .ci/browser-tools.sh")
        }
        _ => {
            eprintln!(
                "skipping: chromium or chromedriver is not installed (bash .ci/browser-tools.sh)"
            );
            Ok(None)
        }
    }
}

pub struct Browser {
    /// Screenshots are saved as `<prefix>-<name>.png`.
    screenshot_prefix: String,
    http: reqwest::Client,
    session: String,
    _profile: tempfile::TempDir,
    _driver: ServiceProcess,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; screenshots of
    /// this browser are named `<screenshot_prefix>-<name>.png`.
    pub async fn start(
        chromium: &str,
        chromedriver: &str,
        screenshot_prefix: &str,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let env = std::collections::HashMap::from([(
            "HOME".to_owned(),
            std::env::temp_dir().to_string_lossy().into_owned(),
        )]);
        let driver =
            ServiceProcess::spawn(Path::new(chromedriver), &[&format!("--port={port}")], &env)?;
        let base = format!("http://127.0.0.1:{port}");
        wait_for_http(&format!("{base}/status"), Duration::from_secs(20)).await?;
        let profile = tempfile::tempdir()?;
        let http = reqwest::Client::new();
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        } } });
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let session = created["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no session: {created}"))?
            .to_owned();
        Ok(Self {
            screenshot_prefix: screenshot_prefix.to_owned(),
            http,
            session: format!("{base}/session/{session}"),
            _profile: profile,
            _driver: driver,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await?.json().await?;
        if let Some(error) = response["value"]["error"].as_str() {
            bail!(
                "webdriver {path}: {error}: {}",
                response["value"]["message"]
            );
        }
        Ok(response["value"].clone())
    }

    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await?;
        Ok(())
    }

    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(self
            .call(reqwest::Method::GET, "/url", None)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    pub async fn source(&self) -> anyhow::Result<String> {
        Ok(self
            .call(reqwest::Method::GET, "/source", None)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    pub async fn find(&self, css: &str) -> anyhow::Result<String> {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .with_context(|| format!("finding {css}"))?;
        Ok(found[ELEMENT]
            .as_str()
            .with_context(|| format!("no element id for {css}: {found}"))?
            .to_owned())
    }

    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await?;
        Ok(())
    }

    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        let element = self.find(css).await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let element = self.find(css).await?;
        Ok(self
            .call(
                reqwest::Method::GET,
                &format!("/element/{element}/text"),
                None,
            )
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Runs an async script; it calls `arguments[arguments.length - 1](result)`.
    pub async fn run_async(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Waits until `css` matches an element whose text contains `needle`.
    pub async fn wait_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(text) = self.text(css).await
                && text.contains(needle)
            {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{css} never showed {needle:?}; page:\n{}",
                self.source().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub async fn screenshot(&self, name: &str) -> anyhow::Result<()> {
        let data = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        let png =
            base64::engine::general_purpose::STANDARD.decode(data.as_str().context("no image")?)?;
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join(format!("{}-{name}.png", self.screenshot_prefix)),
            png,
        )?;
        Ok(())
    }

    pub async fn quit(&self) {
        let _ = self.http.delete(&self.session).send().await;
    }
}
