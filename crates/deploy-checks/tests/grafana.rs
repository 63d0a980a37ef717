//! monitoring/grafana: the provisioning files parse and say what Grafana
//! expects (apiVersion 1, the Prometheus datasource at the compose service
//! and its in-container port, a file provider reading the mounted
//! dashboards), and every dashboard is well formed: unique ids, every panel
//! on the provisioned datasource with at least one query, and every query
//! naming a metric the services export. No Grafana runs here (its image
//! cannot be pulled and Debian does not package it); `smoke.rs` checks the
//! queries against what the running services actually serve.

use std::collections::BTreeSet;

use saas_deploy_checks::{grafana, metrics, promql, read_yaml, repo_root};

#[test]
fn every_provisioning_file_parses_as_grafana_provisioning() {
    let root = repo_root().join("monitoring/grafana/provisioning");
    let mut files = 0;
    for kind in ["datasources", "dashboards"] {
        for entry in std::fs::read_dir(root.join(kind)).unwrap() {
            let path = entry.unwrap().path();
            let relative = path
                .strip_prefix(repo_root())
                .unwrap()
                .display()
                .to_string();
            assert!(
                path.extension().is_some_and(|e| e == "yml" || e == "yaml"),
                "{relative}: Grafana reads only .yml/.yaml here"
            );
            let file = read_yaml(&relative);
            assert_eq!(file["apiVersion"].as_u64(), Some(1), "{relative}");
            let key = if kind == "datasources" {
                "datasources"
            } else {
                "providers"
            };
            assert!(
                file[key].as_sequence().is_some_and(|s| !s.is_empty()),
                "{relative}: no {key}"
            );
            files += 1;
        }
    }
    assert_eq!(files, 2, "one datasource file, one dashboard provider file");
}

#[test]
fn grafana_is_provisioned_with_the_datasource_and_dashboards_compose_mounts() {
    let compose = read_yaml("compose.yml");
    let grafana = &compose["services"]["grafana"];
    let mounts = serde_yaml::to_string(&grafana["volumes"]).unwrap();
    assert!(mounts.contains("./monitoring/grafana/provisioning:/etc/grafana/provisioning"));

    let datasources = read_yaml("monitoring/grafana/provisioning/datasources/prometheus.yml");
    let datasource = &datasources["datasources"][0];
    assert_eq!(datasource["uid"].as_str(), Some("prometheus"));
    assert_eq!(datasource["type"].as_str(), Some("prometheus"));
    assert_eq!(
        datasource["access"].as_str(),
        Some("proxy"),
        "Grafana's server queries Prometheus"
    );
    let url = datasource["url"].as_str().unwrap();
    let prometheus = &compose["services"]["prometheus"];
    assert!(!prometheus.is_null(), "compose has a prometheus service");
    let published = serde_yaml::to_string(&prometheus["ports"]).unwrap();
    let container_port = published
        .trim()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_matches(|c: char| !c.is_ascii_digit());
    assert_eq!(
        url,
        format!("http://prometheus:{container_port}"),
        "the datasource is compose's prometheus service on its in-container port"
    );
    assert!(
        grafana["depends_on"]["prometheus"].is_mapping(),
        "Grafana starts after Prometheus"
    );

    let providers = read_yaml("monitoring/grafana/provisioning/dashboards/odoo-saas.yml");
    let provider = &providers["providers"][0];
    assert_eq!(provider["type"].as_str(), Some("file"));
    assert_eq!(
        provider["allowUiUpdates"].as_bool(),
        Some(false),
        "dashboards live in the repository"
    );
    let path = provider["options"]["path"].as_str().unwrap();
    assert!(
        mounts.contains(&format!("./monitoring/grafana/dashboards:{path}")),
        "dashboards must be mounted at {path}"
    );
}

#[test]
fn every_dashboard_panel_queries_an_exported_metric_on_the_provisioned_datasource() {
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
        assert!(
            dashboard["schemaVersion"].as_u64().is_some(),
            "{file}: schemaVersion"
        );
        assert!(
            !dashboard.to_string().contains("\"uid\":\"${"),
            "{file}: datasource must be the provisioned uid"
        );
        let mut ids = BTreeSet::new();
        for panel in grafana::panels(dashboard) {
            let title = &panel["title"];
            assert!(
                ids.insert(panel["id"].as_u64().expect("panel id")),
                "{file}: panel id {} twice",
                panel["id"]
            );
            let grid = &panel["gridPos"];
            let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
            assert!(
                x + w <= 24 && grid["h"].as_u64().is_some(),
                "{file}: {title}: gridPos {grid}"
            );
            if panel["type"] == "row" {
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"].as_str(),
                Some("prometheus"),
                "{file}: {title}"
            );
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{file}: {title} has no query");
            let mut ref_ids = BTreeSet::new();
            for target in targets {
                assert!(
                    ref_ids.insert(target["refId"].to_string()),
                    "{file}: {title}: refId twice"
                );
                let expr = target["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{file}: {title}: a target without expr"));
                let names = promql::metric_names(expr);
                assert!(!names.is_empty(), "{file}: {title}: {expr} names no metric");
                for name in names {
                    assert!(
                        metrics::is_exported(&name),
                        "{file}: {title}: {name} is exported by no service"
                    );
                }
            }
        }
        for variable in dashboard["templating"]["list"].as_array().unwrap() {
            if variable["type"] == "query" {
                assert_eq!(
                    variable["datasource"]["uid"].as_str(),
                    Some("prometheus"),
                    "{file}: variable {}",
                    variable["name"]
                );
            }
        }
    }
}

#[test]
fn monitoring_readme_lists_the_exported_metrics() {
    let readme = saas_deploy_checks::read_repo_file("monitoring/README.md");
    let section = readme
        .split("## Metrics the services export")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("monitoring/README.md lists the exported metrics");
    for name in metrics::PROCESS
        .iter()
        .chain(metrics::COMMON)
        .chain(metrics::HTTP)
        .chain(metrics::HTTP_HISTOGRAMS)
        .chain(metrics::WORKER)
        .chain(metrics::WORKER_HISTOGRAMS)
    {
        assert!(
            section.contains(&format!("`{name}")),
            "monitoring/README.md does not list {name}"
        );
    }
}
