//! Health probe: ask Odoo for a tenant's login page until it answers 200.

use std::time::{Duration, Instant};

use reqwest::header::HOST;
use url::Url;

use crate::error::{OdooError, Result};

/// How to probe Odoo after provisioning.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Give up (with [`OdooError::ProbeTimeout`]) after this long.
    pub timeout: Duration,
    /// Pause between attempts.
    pub interval: Duration,
    /// Path to request, `/web/login` by default.
    pub path: String,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            interval: Duration::from_millis(250),
            path: "/web/login".to_owned(),
        }
    }
}

/// Requests `<odoo_url><path>` with `Host: <host>` until it answers 200; returns how
/// long it took. Odoo's `dbfilter` picks the database from that host.
#[tracing::instrument(skip_all)]
pub async fn probe_odoo(odoo_url: &Url, host: &str, options: &ProbeOptions) -> Result<Duration> {
    let url = odoo_url
        .join(&options.path)
        .map_err(|e| OdooError::invalid("probe path", e.to_string()))?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| OdooError::invalid("HTTP client", e.to_string()))?;
    let started = Instant::now();
    loop {
        let remaining = options.timeout.saturating_sub(started.elapsed());
        let attempt = client
            .get(url.clone())
            .header(HOST, host)
            .timeout(remaining.max(Duration::from_millis(50)))
            .send()
            .await;
        let last = match attempt {
            Ok(response) if response.status() == reqwest::StatusCode::OK => {
                return Ok(started.elapsed());
            }
            Ok(response) => format!("HTTP {}", response.status()),
            Err(e) => format!("{e}"),
        };
        if started.elapsed() + options.interval >= options.timeout {
            return Err(OdooError::ProbeTimeout {
                url: url.to_string(),
                host: host.to_owned(),
                timeout: options.timeout,
                last,
            });
        }
        tokio::time::sleep(options.interval).await;
    }
}
