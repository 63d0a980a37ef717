//! Dashboards and alert rules name only metrics the services export
//! (`saas_deploy_checks::metrics`, the list in monitoring/README.md, which
//! is what the code registers) and only scrape jobs prometheus.yml defines.
//! `smoke.rs` checks the same against what the running services serve.

use std::collections::BTreeSet;

use saas_deploy_checks::{grafana, metrics, promql, read_yaml};

fn alert_exprs() -> Vec<(String, String)> {
    promql::alert_rules()
}

#[test]
fn alerts_and_dashboards_use_only_exported_metrics() {
    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    for (source, expr) in alert_exprs()
        .into_iter()
        .chain(grafana::dashboard_queries())
    {
        for name in promql::metric_names(&expr) {
            if !metrics::is_exported(&name) {
                unknown.push(format!("{source}: {name}"));
            }
            used.insert(name);
        }
    }
    assert!(
        unknown.is_empty(),
        "metrics no service exports: {unknown:#?}"
    );
    for required in [
        "queue_depth",
        "queue_consumer_up",
        "tenants_backup_overdue",
        "http_request_duration_seconds_bucket",
        "service_ready",
    ] {
        assert!(used.contains(required), "nothing watches {required}");
    }
}

#[test]
fn job_names_match_prometheus_yml() {
    let config = read_yaml("monitoring/prometheus/prometheus.yml");
    let jobs: BTreeSet<&str> = config["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|j| j["job_name"].as_str().unwrap())
        .collect();
    let all_exprs = alert_exprs()
        .into_iter()
        .chain(grafana::dashboard_queries());
    for (source, expr) in all_exprs {
        for (at, _) in expr.match_indices("job=") {
            let rest = expr[at + 4..].trim_start_matches('~');
            let value = rest.trim_start_matches('"').split('"').next().unwrap();
            if value.starts_with('$') {
                continue;
            }
            for job in value.split('|') {
                assert!(
                    jobs.contains(job),
                    "{source}: job {job:?} is not scraped ({jobs:?})"
                );
            }
        }
    }
}

#[test]
fn the_exported_list_is_what_the_code_registers() {
    let listed: BTreeSet<String> = metrics::PROCESS
        .iter()
        .chain(metrics::COMMON)
        .chain(metrics::HTTP)
        .chain(metrics::MAIL)
        .chain(metrics::HTTP_HISTOGRAMS)
        .chain(metrics::WORKER)
        .chain(metrics::WORKER_HISTOGRAMS)
        .map(|s| s.to_string())
        .collect();
    let registered = metrics::registered_in_code();
    assert_eq!(
        listed, registered,
        "saas_deploy_checks::metrics (and monitoring/README.md) must list exactly what crates/*/src registers"
    );
}

#[test]
fn every_variable_lists_label_values_of_an_exported_metric() {
    let variables = grafana::label_values_variables();
    assert!(
        !variables.is_empty(),
        "the operations dashboard filters by kind"
    );
    for (file, metric, label) in variables {
        assert!(
            metrics::is_exported(&metric),
            "{file}: {metric} is not exported"
        );
        assert!(
            !label.is_empty(),
            "{file}: label_values({metric}) needs a label"
        );
    }
}
