//! Dashboards and alert rules name only metrics the services export
//! (`saas_deploy_checks::metrics`, the list in monitoring/README.md), only
//! scrape jobs prometheus.yml defines, and Grafana is provisioned with the
//! datasource the dashboards use.

use std::collections::BTreeSet;

use saas_deploy_checks::{grafana, metrics, promql, read_yaml};

fn alert_exprs() -> Vec<(String, String)> {
    read_yaml("monitoring/prometheus/alerts.yml")["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .map(|r| {
            let name = r["alert"]
                .as_str()
                .or(r["record"].as_str())
                .unwrap()
                .to_owned();
            (name, r["expr"].as_str().unwrap().to_owned())
        })
        .collect()
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
fn grafana_is_provisioned_with_the_datasource_the_dashboards_use() {
    let datasources = read_yaml("monitoring/grafana/provisioning/datasources/prometheus.yml");
    let datasource = &datasources["datasources"][0];
    assert_eq!(datasource["uid"].as_str(), Some("prometheus"));
    assert_eq!(datasource["url"].as_str(), Some("http://prometheus:9090"));
    let providers = read_yaml("monitoring/grafana/provisioning/dashboards/odoo-saas.yml");
    let compose = read_yaml("compose.yml");
    let mounts = serde_yaml::to_string(&compose["services"]["grafana"]["volumes"]).unwrap();
    let path = providers["providers"][0]["options"]["path"]
        .as_str()
        .unwrap();
    assert!(
        mounts.contains(&format!("./monitoring/grafana/dashboards:{path}")),
        "dashboards must be mounted at {path}"
    );

    let dashboards = grafana::dashboards();
    let titles: Vec<&str> = dashboards
        .iter()
        .map(|(_, d)| d["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        dashboards.len(),
        3,
        "platform overview, operations and queue, HTTP: {titles:?}"
    );
    let mut uids = BTreeSet::new();
    for (file, dashboard) in &dashboards {
        assert!(
            uids.insert(dashboard["uid"].as_str().unwrap().to_owned()),
            "{file}: duplicate uid"
        );
        let text = dashboard.to_string();
        assert!(
            !text.contains("\"uid\":\"${"),
            "{file}: datasource must be the provisioned uid"
        );
        for panel in dashboard["panels"].as_array().unwrap() {
            if panel["type"] != "row" {
                assert_eq!(
                    panel["datasource"]["uid"].as_str(),
                    Some("prometheus"),
                    "{file}: {}",
                    panel["title"]
                );
                assert!(
                    !panel["targets"].as_array().unwrap().is_empty(),
                    "{file}: {} has no query",
                    panel["title"]
                );
            }
        }
    }
}
