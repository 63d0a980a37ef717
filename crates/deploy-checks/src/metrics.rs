//! The metrics the services export (issue 7, monitoring/README.md): the only
//! ones dashboards and alert rules may name; the names the code registers;
//! and the series a scraped `/metrics` page holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The standard process metrics of the prometheus crate's process
/// collector (0.14, Linux), which every service registers.
pub const PROCESS: &[&str] = &[
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
    "process_threads",
];

/// Every service, besides [`PROCESS`].
pub const COMMON: &[&str] = &["service_ready", "dependency_up"];

/// admin and portal.
pub const HTTP: &[&str] = &["http_requests_total"];
/// admin and portal, once they stored (or dropped) a message: labelled
/// series, so not among [`expected_series`].
pub const MAIL: &[&str] = &["email_queued_total", "email_dropped_total"];
pub const HTTP_HISTOGRAMS: &[&str] = &["http_request_duration_seconds"];

/// worker.
pub const WORKER: &[&str] = &[
    "operations_total",
    "queue_depth",
    "operations_requeued_total",
    "workers_alive",
    "queue_consumer_up",
    "tenants_backup_overdue",
    "last_successful_backup_timestamp_seconds",
    "odoo_server_db_connections",
    "odoo_server_db_max_connections",
    "certificate_renewal_failures_total",
    "custom_domain_certificates_expiring",
];
pub const WORKER_HISTOGRAMS: &[&str] = &["operation_duration_seconds"];

/// Written by Prometheus itself for every target.
pub const SCRAPE: &[&str] = &["up"];

/// Whether `name` (a series name, so `_bucket`/`_sum`/`_count` of a
/// histogram count) is exported by some service.
pub fn is_exported(name: &str) -> bool {
    let plain = PROCESS
        .iter()
        .chain(COMMON)
        .chain(HTTP)
        .chain(MAIL)
        .chain(WORKER)
        .chain(SCRAPE);
    if plain.into_iter().any(|m| *m == name) {
        return true;
    }
    HTTP_HISTOGRAMS.iter().chain(WORKER_HISTOGRAMS).any(|h| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name == format!("{h}{s}"))
    })
}

/// The series names a service's `/metrics` must contain for the dashboards
/// and alerts to work (histograms by their `_bucket` series).
pub fn expected_series(service: &str) -> Vec<String> {
    let mut names: Vec<String> = PROCESS
        .iter()
        .chain(COMMON)
        .map(|s| s.to_string())
        .collect();
    let (plain, histograms) = match service {
        "admin" | "portal" => (HTTP, HTTP_HISTOGRAMS),
        "worker" => (WORKER, WORKER_HISTOGRAMS),
        other => panic!("unknown service {other}"),
    };
    names.extend(plain.iter().map(|s| s.to_string()));
    names.extend(histograms.iter().map(|h| format!("{h}_bucket")));
    names
}

/// Names the code registers (`Opts::new("name", ...)`, `Gauge::new("name",
/// ...)` and the like in `crates/*/src`), plus [`PROCESS`] when some crate
/// registers the process collector.
pub fn registered_in_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut process_collector = false;
    for file in rust_sources(&crate::repo_root().join("crates")) {
        let text = std::fs::read_to_string(&file).unwrap();
        process_collector |= text.contains("ProcessCollector::for_self()");
        for (at, _) in text.match_indices("::new(") {
            let constructor: String = text[..at]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if !METRIC_CONSTRUCTORS.contains(&constructor.as_str()) {
                continue;
            }
            let rest = text[at + 6..].trim_start();
            if let Some(literal) = rest.strip_prefix('"') {
                names.insert(literal.split('"').next().unwrap().to_owned());
            }
        }
    }
    if process_collector {
        names.extend(PROCESS.iter().map(|s| s.to_string()));
    }
    names
}

/// What the prometheus crate names a metric with (the *Vec types take an
/// `Opts`, which names it).
const METRIC_CONSTRUCTORS: &[&str] = &[
    "Opts",
    "HistogramOpts",
    "Gauge",
    "IntGauge",
    "Counter",
    "IntCounter",
    "Histogram",
];

fn rust_sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() && name != "deploy-checks" && name != "tests" && name != "target" {
            found.extend(rust_sources(&path));
        } else if name.ends_with(".rs") {
            found.push(path);
        }
    }
    found
}

/// Series names and the label names each carries, from Prometheus' text
/// exposition format.
pub fn parse_exposition(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut series: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line
            .find(|c: char| c == '{' || c.is_whitespace())
            .unwrap_or(line.len());
        let labels = series.entry(line[..name_end].to_owned()).or_default();
        if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.rfind('}').unwrap_or(line.len())];
            labels.extend(crate::promql::label_names(body));
        }
    }
    series
}
