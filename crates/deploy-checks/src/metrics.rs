//! The metrics the services export (issue 7, monitoring/README.md): the only
//! ones dashboards and alert rules may name.

/// Every service.
pub const COMMON: &[&str] = &[
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "service_ready",
    "dependency_up",
];

/// admin and portal.
pub const HTTP: &[&str] = &["http_requests_total"];
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
];
pub const WORKER_HISTOGRAMS: &[&str] = &["operation_duration_seconds"];

/// Written by Prometheus itself for every target.
pub const SCRAPE: &[&str] = &["up"];

/// Whether `name` (a series name, so `_bucket`/`_sum`/`_count` of a
/// histogram count) is exported by some service.
pub fn is_exported(name: &str) -> bool {
    let plain = COMMON.iter().chain(HTTP).chain(WORKER).chain(SCRAPE);
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
    let mut names: Vec<String> = COMMON.iter().map(|s| s.to_string()).collect();
    let (plain, histograms) = match service {
        "admin" | "portal" => (HTTP, HTTP_HISTOGRAMS),
        "worker" => (WORKER, WORKER_HISTOGRAMS),
        other => panic!("unknown service {other}"),
    };
    names.extend(plain.iter().map(|s| s.to_string()));
    names.extend(histograms.iter().map(|h| format!("{h}_bucket")));
    names
}
