//! The three binaries on loopback behind the real nginx with the shipped
//! configuration, scraped by a real Prometheus with the shipped rules:
//! hosts route as documented, every job is `up`, and the services export
//! the metrics (and labels) the Grafana dashboards and the alerts use.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use saas_deploy_checks::nginx::{BASE_DOMAIN, NginxPrefix, Upstreams};
use saas_deploy_checks::scratch::ScratchDir;
use saas_deploy_checks::{
    free_port, grafana, http, metrics, promql, read_repo_file, repo_root, stub, tools,
};
use saas_testkit::{ServiceProcess, TestDb};

const SERVICES: [&str; 3] = ["admin", "portal", "worker"];

#[test]
fn the_stack_answers_through_nginx_and_prometheus_scrapes_every_job() {
    let Some(nginx) = tools::require("nginx") else {
        return;
    };
    let Some(prometheus) = tools::require("prometheus") else {
        return;
    };
    let binaries = build_binaries();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime
        .block_on(TestDb::new("deploy_smoke"))
        .expect("test database");

    let ports: HashMap<&str, u16> = SERVICES.iter().map(|s| (*s, free_port())).collect();
    // Where each service serves /metrics: admin's and portal's own
    // METRICS_PORT, the worker's only port.
    let metrics_ports: HashMap<&str, u16> = SERVICES
        .iter()
        .map(|s| {
            (
                *s,
                if *s == "worker" {
                    ports[s]
                } else {
                    free_port()
                },
            )
        })
        .collect();
    let files = tempfile::tempdir().expect("temporary directory");
    let mut env = service_env(&db.url, &ports);
    env.insert(
        "ROUTING_MAP_PATH".to_owned(),
        files
            .path()
            .join("routing/tenants.map")
            .to_string_lossy()
            .into_owned(),
    );
    // A default Odoo server on the test cluster: the worker reads its
    // connections, so the connection gauges are served too.
    env.insert("ODOO_UPSTREAM".to_owned(), "127.0.0.1:9".to_owned());
    env.insert(
        "ODOO_FILESTORE_ROOT".to_owned(),
        files
            .path()
            .join("filestore")
            .to_string_lossy()
            .into_owned(),
    );
    env.insert(
        "BACKUP_STORE_URL".to_owned(),
        format!("file://{}", files.path().join("backups").display()),
    );
    let mut processes = Vec::new();
    for service in SERVICES {
        let mut env = env.clone();
        // The worker serves /metrics on its only port (WORKER_PORT).
        if service != "worker" {
            env.insert(
                "METRICS_PORT".to_owned(),
                metrics_ports[service].to_string(),
            );
        }
        let process =
            ServiceProcess::spawn(&binaries.join(service), &[], &env).expect("spawn service");
        wait_for(
            || http_status(ports[service], "/healthz") == Some(200),
            &format!("{service} /healthz"),
            &|| process.log(),
        );
        processes.push(process);
    }

    let odoo = stub::start("odoo");
    let upstreams = Upstreams {
        admin: format!("127.0.0.1:{}", ports["admin"]),
        portal: format!("127.0.0.1:{}", ports["portal"]),
        odoo_websocket_port: stub::start("odoo-websocket"),
    };
    let prefix = NginxPrefix::new(&upstreams);
    prefix.write_routing_map(&format!("acme 127.0.0.1:{odoo};\nsleepy suspended;\n"));
    let _nginx = prefix.start(&nginx);
    let through_nginx = |label: &str, path: &str| {
        http::get(prefix.port, &format!("{label}.{BASE_DOMAIN}"), path).unwrap()
    };
    assert_eq!(
        through_nginx("admin", "/healthz").status,
        200,
        "{}",
        prefix.log()
    );
    assert_eq!(
        through_nginx("portal", "/healthz").status,
        200,
        "{}",
        prefix.log()
    );
    assert!(
        through_nginx("acme", "/web/login")
            .body
            .starts_with("stub=odoo")
    );
    assert_eq!(through_nginx("sleepy", "/").status, 503);
    assert_eq!(through_nginx("acme", "/web/database/manager").status, 403);

    let scratch = ScratchDir::new("prometheus");
    let prometheus_port = free_port();
    let _prometheus = start_prometheus(&prometheus, &scratch, prometheus_port, &metrics_ports);
    wait_for(
        || every_job_up(prometheus_port),
        "Prometheus reporting up == 1 for admin, portal, worker and prometheus",
        &|| {
            query(prometheus_port, "up")
                .map(|v| v.to_string())
                .unwrap_or_default()
        },
    );

    for service in ["admin", "portal"] {
        assert_eq!(
            http_status(ports[service], "/metrics"),
            Some(404),
            "{service} serves /metrics on its public port"
        );
    }
    let mut served = BTreeMap::new();
    for service in SERVICES {
        let exposition = http::get(metrics_ports[service], "127.0.0.1", "/metrics")
            .unwrap()
            .body;
        let missing: Vec<String> = metrics::expected_series(service)
            .into_iter()
            .filter(|name| !exposition.lines().any(|l| l.starts_with(name.as_str())))
            .collect();
        // The worker creates every labelled series at start, so all exist.
        assert!(missing.is_empty(), "{service} /metrics lacks {missing:?}");
        for (name, labels) in metrics::parse_exposition(&exposition) {
            served
                .entry(name)
                .or_insert_with(BTreeSet::new)
                .extend(labels);
        }
    }
    drop(processes);
    dashboards_and_alerts_use_only_served_metrics_and_labels(served);
}

/// Every metric a dashboard panel, a dashboard variable or an alert rule
/// names is one the running services serve (or Prometheus' `up`), and every
/// label its selectors match on is one that metric carries (or a target
/// label Prometheus adds).
fn dashboards_and_alerts_use_only_served_metrics_and_labels(
    mut served: BTreeMap<String, BTreeSet<String>>,
) {
    served.insert("up".to_owned(), BTreeSet::new());
    let target_labels = ["job", "instance"];
    let mut problems = Vec::new();
    let queries = grafana::dashboard_queries()
        .into_iter()
        .chain(promql::alert_rules());
    for (source, expr) in queries {
        for name in promql::metric_names(&expr) {
            if !served.contains_key(&name) {
                problems.push(format!("{source}: {name} is served by no service"));
            }
        }
        for (name, labels) in promql::selectors(&expr) {
            let Some(has) = served.get(&name) else {
                continue;
            };
            for label in labels {
                if !has.contains(&label) && !target_labels.contains(&label.as_str()) {
                    problems.push(format!("{source}: {name} has no label {label}"));
                }
            }
        }
    }
    for (file, metric, label) in grafana::label_values_variables() {
        if !served.get(&metric).is_some_and(|has| has.contains(&label)) {
            problems.push(format!(
                "{file}: label_values({metric}, {label}) lists nothing"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "dashboards and alerts query what the services do not serve:\n{}\nserved: {served:#?}",
        problems.join("\n")
    );
}

fn service_env(database_url: &str, ports: &HashMap<&str, u16>) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = [
        ("DATABASE_URL", database_url.to_owned()),
        ("REDIS_URL", saas_testkit::redis_url()),
        ("REDIS_KEY_PREFIX", saas_testkit::redis_prefix()),
        ("BIND_ADDR", "127.0.0.1".to_owned()),
        ("BASE_DOMAIN", BASE_DOMAIN.to_owned()),
        (
            "SECRET_KEY",
            "smoke-test-secret-key-0123456789abcdef".to_owned(),
        ),
        ("LOG_LEVEL", "info".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (service, port) in ports {
        env.insert(format!("{}_PORT", service.to_uppercase()), port.to_string());
    }
    env
}

/// `cargo build --release` of the three binaries, as they ship (quick when
/// `.ci/run` already built them); returns the directory holding them.
fn build_binaries() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    tools::run_ok(Command::new(cargo).current_dir(repo_root()).args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "admin",
        "-p",
        "portal",
        "-p",
        "worker",
    ]));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("release")
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The shipped prometheus.yml and alerts.yml with loopback targets (each
/// job's metrics port), a 1 s scrape interval and no Alertmanager.
fn start_prometheus(
    binary: &Path,
    scratch: &ScratchDir,
    port: u16,
    ports: &HashMap<&str, u16>,
) -> KillOnDrop {
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&read_repo_file("monitoring/prometheus/prometheus.yml")).unwrap();
    config["global"]["scrape_interval"] = "1s".into();
    config["global"]["scrape_timeout"] = "1s".into();
    config.as_mapping_mut().unwrap().remove("alerting");
    for job in config["scrape_configs"].as_sequence_mut().unwrap() {
        let name = job["job_name"].as_str().unwrap().to_owned();
        let port = if name == "prometheus" {
            port
        } else {
            ports[name.as_str()]
        };
        job["static_configs"][0]["targets"][0] = format!("127.0.0.1:{port}").into();
    }
    scratch.write("prometheus.yml", &serde_yaml::to_string(&config).unwrap());
    scratch.write(
        "alerts.yml",
        &read_repo_file("monitoring/prometheus/alerts.yml"),
    );
    let log = std::fs::File::create(scratch.path().join("prometheus.log")).unwrap();
    let child = Command::new(binary)
        .arg(format!(
            "--config.file={}",
            scratch.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            scratch.dir("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    KillOnDrop(child)
}

fn query(port: u16, promql: &str) -> Option<serde_json::Value> {
    let response = http::get(port, "127.0.0.1", &format!("/api/v1/query?query={promql}")).ok()?;
    let body = response.body.trim();
    // Chunked bodies: the JSON object is the line starting with '{'.
    let json = body.lines().find(|l| l.starts_with('{'))?;
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .map(|v| v["data"]["result"].clone())
}

fn every_job_up(port: u16) -> bool {
    let Some(result) = query(port, "up") else {
        return false;
    };
    ["admin", "portal", "worker", "prometheus"]
        .iter()
        .all(|job| {
            result
                .as_array()
                .unwrap()
                .iter()
                .any(|sample| sample["metric"]["job"] == *job && sample["value"][1] == "1")
        })
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    http::get(port, "127.0.0.1", path).ok().map(|r| r.status)
}

fn wait_for(mut done: impl FnMut() -> bool, what: &str, context: &dyn Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
