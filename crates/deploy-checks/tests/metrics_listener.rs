//! `/metrics` of admin and portal lives on an internal listener
//! (`METRICS_PORT`), not on their public port: Prometheus scrapes exactly
//! the ports the services listen on for metrics, in compose and in
//! Kubernetes, and neither compose nor a Kubernetes Service nor nginx
//! exposes them.

use std::collections::BTreeMap;

use saas_deploy_checks::{compose, read_repo_file, read_yaml};
use serde_yaml::Value;

/// `job -> host:port` from monitoring/prometheus/prometheus.yml.
fn scrape_targets() -> BTreeMap<String, (String, u16)> {
    let config = read_yaml("monitoring/prometheus/prometheus.yml");
    config["scrape_configs"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|job| {
            let target = job["static_configs"][0]["targets"][0].as_str().unwrap();
            let (host, port) = target.rsplit_once(':').unwrap();
            (
                job["job_name"].as_str().unwrap().to_owned(),
                (host.to_owned(), port.parse().unwrap()),
            )
        })
        .collect()
}

fn env_port(environment: &Value, var: &str) -> u16 {
    environment[var]
        .as_str()
        .unwrap_or_else(|| panic!("no {var}"))
        .parse()
        .unwrap_or_else(|_| panic!("{var} is no fixed port"))
}

#[test]
fn prometheus_scrapes_the_metrics_listener_of_each_compose_service() {
    let services = compose::services("compose.yml");
    let targets = scrape_targets();
    for (job, port_var) in [
        ("admin", "METRICS_PORT"),
        ("portal", "METRICS_PORT"),
        ("worker", "WORKER_PORT"),
    ] {
        let environment = &services[job]["environment"];
        let listens = env_port(environment, port_var);
        assert_eq!(
            targets[job],
            (job.to_owned(), listens),
            "prometheus.yml's {job} target is not {job}'s {port_var}"
        );
    }
    for app in ["admin", "portal"] {
        let environment = &services[app]["environment"];
        let app_port = env_port(environment, &format!("{}_PORT", app.to_uppercase()));
        let metrics_port = env_port(environment, "METRICS_PORT");
        assert_ne!(app_port, metrics_port, "{app}: metrics on the app port");
        // compose publishes only the application port.
        let published = serde_yaml::to_string(&services[app]["ports"]).unwrap();
        assert!(
            !published.contains(&format!(":{metrics_port}")),
            "compose.yml publishes {app}'s metrics port: {published}"
        );
    }
}

fn manifests(file: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read_repo_file(&format!("deploy/kubernetes/{file}")))
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|v: &Value| !v.is_null())
        .collect()
}

#[test]
fn kubernetes_annotations_name_the_metrics_container_port_and_services_leave_it_out() {
    let config = &manifests("configmap.yaml")[0]["data"];
    let metrics_port = env_port(config, "METRICS_PORT");
    for app in ["admin", "portal"] {
        let documents = manifests(&format!("{app}.yaml"));
        let deployment = documents
            .iter()
            .find(|d| d["kind"] == "Deployment")
            .unwrap();
        let template = &deployment["spec"]["template"];
        assert_eq!(
            template["metadata"]["annotations"]["prometheus.io/port"].as_str(),
            Some(metrics_port.to_string().as_str()),
            "{app}: the scrape annotation is not METRICS_PORT"
        );
        let ports = template["spec"]["containers"][0]["ports"]
            .as_sequence()
            .unwrap();
        assert!(
            ports.iter().any(|p| p["name"] == "metrics"
                && p["containerPort"].as_u64() == Some(u64::from(metrics_port))),
            "{app}: no container port named metrics on {metrics_port}"
        );
        let service = documents.iter().find(|d| d["kind"] == "Service").unwrap();
        for port in service["spec"]["ports"].as_sequence().unwrap() {
            assert!(
                port["targetPort"] != "metrics"
                    && port["targetPort"].as_u64() != Some(u64::from(metrics_port))
                    && port["port"].as_u64() != Some(u64::from(metrics_port)),
                "{app}'s Service exposes the metrics port"
            );
        }
    }
}

#[test]
fn nginx_never_proxies_to_a_metrics_port() {
    let conf = read_repo_file("nginx/nginx.conf");
    let config = &manifests("configmap.yaml")[0]["data"];
    let metrics_port = env_port(config, "METRICS_PORT");
    assert!(
        !conf.contains(&format!(":{metrics_port}")),
        "nginx.conf names the metrics port"
    );
}
