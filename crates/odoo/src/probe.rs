//! Health probe: ask Odoo for a tenant's login page until it answers 200,
//! then warm every Odoo worker process for the customer.

use std::time::{Duration, Instant};

use reqwest::header::HOST;
use url::Url;

use crate::error::{OdooError, Result};

/// Odoo's HTTP worker processes (`workers` in `odoo/odoo.conf`; a test
/// keeps the two equal).
pub const ODOO_HTTP_WORKERS: usize = 4;

/// How to probe Odoo after provisioning.
#[derive(Clone, Debug)]
pub struct ProbeOptions {
    /// Give up (with [`OdooError::ProbeTimeout`]) after this long.
    pub timeout: Duration,
    /// Pause between attempts.
    pub interval: Duration,
    /// Path to request, `/web/login` by default.
    pub path: String,
    /// Requests sent at once after the first 200. Each Odoo worker process
    /// loads a database's registry on its first request for it (0.3-1.4 s);
    /// requests arriving together land on different idle workers, so after
    /// as many as there are workers the customer's first page, sign-in and
    /// web client find the registry loaded whichever worker serves them.
    /// 0 warms nothing beyond the probe's own worker.
    pub warm_requests: usize,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            interval: Duration::from_millis(250),
            path: "/web/login".to_owned(),
            warm_requests: ODOO_HTTP_WORKERS,
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
                warm_workers(&client, &url, host, options, started).await;
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

/// `options.warm_requests` requests at once; what they answer does not
/// matter (the tenant answered already), only that each worker served one.
async fn warm_workers(
    client: &reqwest::Client,
    url: &Url,
    host: &str,
    options: &ProbeOptions,
    started: Instant,
) {
    let remaining = options
        .timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_secs(1));
    let requests = (0..options.warm_requests).map(|_| {
        client
            .get(url.clone())
            .header(HOST, host)
            .timeout(remaining)
            .send()
    });
    let answers = futures::future::join_all(requests).await;
    let warmed = answers
        .iter()
        .filter(|a| a.as_ref().is_ok_and(|r| r.status().is_success()))
        .count();
    tracing::debug!(warmed, asked = options.warm_requests, "Odoo workers warmed");
}

#[cfg(test)]
mod tests {
    /// The probe warms as many workers as the shipped odoo.conf runs.
    #[test]
    fn warms_as_many_workers_as_odoo_conf_runs() -> Result<(), String> {
        let conf =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../odoo/odoo.conf"))
                .map_err(|e| e.to_string())?;
        let workers = conf
            .lines()
            .find_map(|l| l.trim().strip_prefix("workers"))
            .and_then(|rest| rest.trim().strip_prefix('='))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or("odoo.conf sets no workers")?;
        assert_eq!(super::ODOO_HTTP_WORKERS, workers);
        Ok(())
    }
}
