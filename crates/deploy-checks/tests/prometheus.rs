//! monitoring/prometheus: `promtool check config`, `check rules`, `test
//! rules` with a test for every alert, and every dashboard query parsed by
//! promtool too.

use std::collections::BTreeSet;
use std::process::Command;

use saas_deploy_checks::{read_yaml, repo_root, scratch::ScratchDir, tools};

fn alert_names() -> BTreeSet<String> {
    read_yaml("monitoring/prometheus/alerts.yml")["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .filter_map(|r| r["alert"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn promtool_accepts_the_prometheus_config_and_rules() {
    let Some(promtool) = tools::require("promtool") else {
        return;
    };
    let dir = repo_root().join("monitoring/prometheus");
    tools::run_ok(Command::new(&promtool).current_dir(&dir).args([
        "check",
        "config",
        "prometheus.yml",
    ]));
    tools::run_ok(
        Command::new(&promtool)
            .current_dir(&dir)
            .args(["check", "rules", "alerts.yml"]),
    );
}

#[test]
fn promtool_unit_tests_pass() {
    let Some(promtool) = tools::require("promtool") else {
        return;
    };
    let dir = repo_root().join("monitoring/prometheus");
    tools::run_ok(Command::new(&promtool).current_dir(&dir).args([
        "test",
        "rules",
        "alerts.test.yml",
    ]));
}

#[test]
fn every_alert_has_a_firing_and_a_quiet_unit_test() {
    let tests = read_yaml("monitoring/prometheus/alerts.test.yml");
    let cases: Vec<(String, bool)> = tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_sequence().unwrap().iter())
        .map(|case| {
            let fires = !case["exp_alerts"].as_sequence().unwrap().is_empty();
            (case["alertname"].as_str().unwrap().to_owned(), fires)
        })
        .collect();
    for alert in alert_names() {
        assert!(
            cases.contains(&(alert.clone(), true)),
            "{alert} has no unit test where it fires"
        );
        assert!(
            cases.contains(&(alert.clone(), false)),
            "{alert} has no unit test where it stays quiet"
        );
    }
}

#[test]
fn prometheus_scrapes_the_three_services_and_itself() {
    let config = read_yaml("monitoring/prometheus/prometheus.yml");
    let jobs: BTreeSet<(String, String)> = config["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|job| {
            let target = job["static_configs"][0]["targets"][0]
                .as_str()
                .unwrap()
                .to_owned();
            (job["job_name"].as_str().unwrap().to_owned(), target)
        })
        .collect();
    // admin and portal on their internal METRICS_PORT (metrics_listener.rs
    // checks it against compose.yml), never on their application ports.
    let expected = [
        ("admin", "admin:9100"),
        ("portal", "portal:9100"),
        ("worker", "worker:5002"),
        ("prometheus", "localhost:9090"),
    ];
    for (job, target) in expected {
        assert!(
            jobs.contains(&(job.to_owned(), target.to_owned())),
            "no job {job} scraping {target}: {jobs:?}"
        );
    }
    assert_eq!(
        config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0].as_str(),
        Some("alertmanager:9093")
    );
}

/// Grafana queries, with its variables replaced, as recording rules: promtool
/// then parses every one of them.
#[test]
fn every_dashboard_query_is_valid_promql() {
    let Some(promtool) = tools::require("promtool") else {
        return;
    };
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    for (dashboard, expr) in saas_deploy_checks::grafana::dashboard_queries() {
        let concrete = expr
            .replace("$__rate_interval", "5m")
            .replace("$__interval", "1m")
            .replace("$job", "admin|portal")
            .replace("$kind", ".*");
        assert!(
            !concrete.contains('$'),
            "{dashboard}: unknown variable in {expr}"
        );
        rules.push_str(&format!(
            "      - record: dashboard:query\n        expr: {}\n",
            serde_json::to_string(&concrete).unwrap()
        ));
    }
    let scratch = ScratchDir::new("dashboards");
    let file = scratch.write("dashboard-queries.yml", &rules);
    tools::run_ok(Command::new(&promtool).args(["check", "rules"]).arg(file));
}
