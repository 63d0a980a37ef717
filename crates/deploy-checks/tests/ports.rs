//! Host ports: compose.yml publishes only the entrances, each on its own
//! `*_HOST_PORT` (>= 1024, rootless podman); the internal services are
//! published only by compose.debug.yml; and with `.env.example` no published
//! port collides with another, with what scripts/dev listens on, or with the
//! PostgreSQL, Redis, Prometheus and Alertmanager a developer's machine runs
//! (the first `up` of the old stack failed with "address already in use").

use std::collections::{BTreeMap, BTreeSet};

use saas_deploy_checks::compose::{self, Published};
use saas_deploy_checks::{read_repo_file, repo_root, scratch::ScratchDir, tools};
use serde_yaml::Value;

/// What compose.yml may publish: the public entrance and the UIs.
const ENTRANCES: [&str; 7] = [
    "nginx",
    "admin",
    "portal",
    "grafana",
    "prometheus",
    "alertmanager",
    "adminer",
];
const INTERNAL: [&str; 6] = [
    "postgres",
    "redis",
    "odoo",
    "odoo-templates",
    "worker",
    "garage",
];

fn all_published() -> Vec<Published> {
    compose::FILES
        .into_iter()
        .flat_map(compose::published)
        .collect()
}

/// Ports in use on the host without compose, with who uses them.
fn host_side_ports() -> BTreeMap<u16, String> {
    let mut ports = BTreeMap::new();
    let dev = read_repo_file("scripts/dev");
    // `${ADMIN_PORT:-5000}` and the defaults of its URLs.
    for (at, _) in dev.match_indices("_PORT:-") {
        let digits: String = dev[at + 7..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        // `${PUBLIC_PORT:-}` has no default port: nothing listens on it.
        if digits.is_empty() {
            continue;
        }
        ports.insert(digits.parse().unwrap(), "scripts/dev (default)".to_owned());
    }
    let env = compose::env_example();
    for key in ["ADMIN_PORT", "PORTAL_PORT", "WORKER_PORT"] {
        ports.insert(
            env[key].parse().unwrap(),
            format!("scripts/dev ({key} in .env)"),
        );
    }
    for (key, default) in [("DATABASE_URL", 5432), ("REDIS_URL", 6379)] {
        assert!(
            dev.contains(&format!("127.0.0.1:{default}/")),
            "scripts/dev's {key} default is not on 127.0.0.1:{default}"
        );
        let port = env[key]
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!(".env.example: {key} has no port"));
        ports.insert(port, format!("{key} of the binaries on the host"));
        ports.insert(default, format!("the tests' {key}"));
    }
    // .ci/deploy-tools.sh installs Debian's prometheus and
    // prometheus-alertmanager, which start on a machine with systemd.
    ports.insert(9090, "Debian's prometheus service".to_owned());
    ports.insert(9093, "Debian's prometheus-alertmanager service".to_owned());
    ports
}

#[test]
fn every_published_port_is_its_own_host_port_variable_and_unprivileged() {
    let published = all_published();
    assert!(published.len() >= 11, "{published:#?}");
    for port in &published {
        assert!(
            port.variable.ends_with("_HOST_PORT"),
            "{}: {}: {}: a published port is a *_HOST_PORT variable, not a binary's listen port",
            port.file,
            port.service,
            port.spec
        );
        assert!(
            port.host_port >= 1024,
            "{}: {}: host port {} < 1024 fails under rootless podman",
            port.file,
            port.service,
            port.host_port
        );
    }
    let env = compose::env_example();
    let mut seen = BTreeMap::new();
    // PUBLIC_PORT is no port anything listens on: it is the port public URLs
    // carry, nginx's published one for PUBLIC_SCHEME
    // (`${NGINX_HTTPS_HOST_PORT}`) by design.
    for (key, value) in env
        .iter()
        .filter(|(k, _)| k.ends_with("_PORT") && k.as_str() != "PUBLIC_PORT")
    {
        if let Some(other) = seen.insert(value.clone(), key.clone()) {
            panic!(".env.example: {key} and {other} both use port {value}");
        }
    }
}

/// The port public URLs carry (and nginx's redirect to HTTPS names) is the
/// one nginx publishes for the public scheme, so the links a first `up`
/// makes reach nginx.
#[test]
fn public_port_is_nginxs_published_port_for_the_public_scheme() {
    let env = compose::env_example();
    let published = match env["PUBLIC_SCHEME"].as_str() {
        "https" => "NGINX_HTTPS_HOST_PORT",
        "http" => "NGINX_HTTP_HOST_PORT",
        other => panic!(".env.example: PUBLIC_SCHEME={other}"),
    };
    assert_eq!(
        env["PUBLIC_PORT"], env[published],
        ".env.example: PUBLIC_PORT is not {published}"
    );
    assert_eq!(
        env["PUBLIC_SCHEME"], "https",
        "issue 14: https is the default"
    );
}

#[test]
fn compose_yml_publishes_only_the_entrances() {
    for port in compose::published("compose.yml") {
        assert!(
            ENTRANCES.contains(&port.service.as_str()),
            "compose.yml publishes {} ({}); internal services go in compose.debug.yml",
            port.service,
            port.spec
        );
    }
    for port in compose::published("compose.debug.yml") {
        assert!(
            INTERNAL.contains(&port.service.as_str()),
            "compose.debug.yml publishes {}, which is no internal service",
            port.service
        );
    }
}

#[test]
fn no_published_port_collides_with_another_or_with_the_hosts_own() {
    let host_side = host_side_ports();
    let mut seen: BTreeMap<u16, String> = BTreeMap::new();
    for port in all_published() {
        let who = format!("{} in {} ({})", port.service, port.file, port.variable);
        if let Some(user) = host_side.get(&port.host_port) {
            panic!(
                "{who} publishes {}, which {user} already uses",
                port.host_port
            );
        }
        if let Some(other) = seen.insert(port.host_port, who.clone()) {
            panic!("{who} and {other} both publish {}", port.host_port);
        }
    }
}

/// The same, as podman-compose renders it: with `.env.example` the default
/// stack publishes nothing internal; with compose.debug.yml it does, on the
/// `*_HOST_PORT` values.
#[test]
fn podman_compose_publishes_internal_services_only_with_compose_debug_yml() {
    let Some(podman_compose) = tools::require("podman-compose") else {
        return;
    };
    let scratch = ScratchDir::new("ports");
    let env_file = repo_root().join(".env.example");
    let render = |files: &[&str]| -> Value {
        let mut command = compose::podman_compose(&podman_compose, &scratch, &env_file, "exit 1");
        for file in files {
            command.args(["-f", file]);
        }
        let output = tools::run_ok(command.args(["--profile", "tools", "config"]));
        serde_yaml::from_slice(&output.stdout).expect("podman-compose prints YAML")
    };
    let ports_of = |rendered: &Value, service: &str| -> BTreeSet<String> {
        rendered["services"][service]["ports"]
            .as_sequence()
            .into_iter()
            .flatten()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect()
    };

    let default = render(&["compose.yml"]);
    for service in INTERNAL {
        assert!(
            ports_of(&default, service).is_empty(),
            "with .env.example, {service} publishes {:?}",
            ports_of(&default, service)
        );
    }
    let env = compose::env_example();
    let entrance = [
        ("nginx", "NGINX_PUBLISH_ADDR", "NGINX_HTTP_HOST_PORT", 8080),
        ("nginx", "NGINX_PUBLISH_ADDR", "NGINX_HTTPS_HOST_PORT", 8443),
        ("admin", "PUBLISH_ADDR", "ADMIN_HOST_PORT", 5000),
        ("portal", "PUBLISH_ADDR", "PORTAL_HOST_PORT", 5001),
        ("grafana", "PUBLISH_ADDR", "GRAFANA_HOST_PORT", 3000),
        ("adminer", "PUBLISH_ADDR", "ADMINER_HOST_PORT", 8080),
    ];
    for (service, address, port, inside) in entrance {
        let expected = format!("{}:{}:{inside}", env[address], env[port]);
        assert!(
            ports_of(&default, service).contains(&expected),
            "{service} publishes {:?}, expected {expected}",
            ports_of(&default, service)
        );
    }

    let debug = render(&["compose.yml", "compose.debug.yml"]);
    for (service, port, inside) in [
        ("postgres", "POSTGRES_HOST_PORT", 5432),
        ("redis", "REDIS_HOST_PORT", 6379),
        ("odoo", "ODOO_HOST_PORT", 8069),
        ("worker", "WORKER_HOST_PORT", 5002),
    ] {
        let expected = format!("{}:{}:{inside}", env["PUBLISH_ADDR"], env[port]);
        assert_eq!(
            ports_of(&debug, service),
            BTreeSet::from([expected]),
            "compose.debug.yml: {service}"
        );
    }
}
