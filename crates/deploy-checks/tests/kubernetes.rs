//! deploy/kubernetes: every manifest valid against the Kubernetes schemas
//! (kubernetes-validate, offline, strict), the kustomization renders
//! (kubectl kustomize, where kubectl exists) to manifests valid for the
//! oldest and newest Kubernetes the validator knows, nginx accepts the
//! configuration its templates render to with the nginx Deployment's
//! environment, and the rendered objects are wired together: every
//! ConfigMap/Secret key a pod reads exists, config files are mounted as
//! files (subPath to an existing key), Services, upstreams, claims and the
//! Ingress point where they must, no container is privileged.
//!
//! Not checked here (no cluster, no images): that the pods start. The
//! structural tests below catch what a cluster would refuse or break on.

use std::collections::BTreeMap;
use std::process::Command;

use saas_deploy_checks::nginx::NginxPrefix;
use saas_deploy_checks::{
    envfile, read_repo_file, read_yaml, repo_root, scratch::ScratchDir, tools,
};
use serde_yaml::Value;

/// The resources of the kustomization that are files here (the others are
/// the directories odoo/ and nginx/, whose generated ConfigMaps only exist
/// rendered).
fn resources() -> Vec<String> {
    read_yaml("deploy/kubernetes/kustomization.yaml")["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .filter(|r| r.ends_with(".yaml"))
        .collect()
}

fn parse_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .filter(|d: &Value| !d.is_null())
        .collect()
}

fn documents(file: &str) -> Vec<Value> {
    parse_documents(&read_repo_file(&format!("deploy/kubernetes/{file}")))
}

/// `kubectl kustomize deploy/kubernetes`, or `None` (skipped) without kubectl.
fn render() -> Option<String> {
    let Some(kubectl) = tools::find("kubectl") else {
        eprintln!("SKIPPED: kubectl is not installed; the rendered kustomization is not checked");
        return None;
    };
    let output = tools::run_ok(
        Command::new(kubectl)
            .arg("kustomize")
            .arg(repo_root().join("deploy/kubernetes")),
    );
    Some(String::from_utf8(output.stdout).unwrap())
}

/// The rendered objects, with lookups by kind and name.
struct Rendered(Vec<Value>);

impl Rendered {
    fn load() -> Option<Self> {
        render().map(|text| Self(parse_documents(&text)))
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.0
            .iter()
            .filter(move |d| d["kind"].as_str() == Some(kind))
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.find(kind, name)
            .unwrap_or_else(|| panic!("no {kind} {name} in the rendered kustomization"))
    }

    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.0
            .iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .find(|d| d["metadata"]["name"].as_str() == Some(name))
    }

    /// Data of a ConfigMap or Secret (Secrets here use stringData).
    fn keys(&self, kind: &str, name: &str) -> BTreeMap<String, String> {
        let object = self.get(kind, name);
        let mut keys = BTreeMap::new();
        for field in ["data", "stringData"] {
            if let Some(mapping) = object[field].as_mapping() {
                for (k, v) in mapping {
                    keys.insert(
                        k.as_str().unwrap().to_owned(),
                        v.as_str().unwrap_or_default().to_owned(),
                    );
                }
            }
        }
        keys
    }

    fn config(&self, key: &str) -> String {
        self.keys("ConfigMap", "odoo-saas-config")
            .get(key)
            .unwrap_or_else(|| panic!("{key} is not in the ConfigMap odoo-saas-config"))
            .clone()
    }

    /// A generated ConfigMap's real name (name-hash).
    fn generated(&self, base: &str) -> String {
        let names: Vec<&str> = self
            .of_kind("ConfigMap")
            .filter_map(|d| d["metadata"]["name"].as_str())
            .filter(|n| {
                n.strip_prefix(base)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|hash| !hash.contains('-'))
            })
            .collect();
        assert_eq!(names.len(), 1, "one generated ConfigMap {base}: {names:?}");
        names[0].to_owned()
    }

    fn namespace(&self) -> String {
        self.of_kind("Namespace").next().unwrap()["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// (workload kind/name, pod spec) of every Deployment and Job.
    fn pods(&self) -> Vec<(String, &Value)> {
        self.0
            .iter()
            .filter(|d| matches!(d["kind"].as_str(), Some("Deployment" | "Job")))
            .map(|d| {
                (
                    format!(
                        "{}/{}",
                        d["kind"].as_str().unwrap(),
                        d["metadata"]["name"].as_str().unwrap()
                    ),
                    &d["spec"]["template"]["spec"],
                )
            })
            .collect()
    }

    fn pod(&self, kind: &str, name: &str) -> &Value {
        &self.get(kind, name)["spec"]["template"]["spec"]
    }

    /// A container's environment as the kubelet computes it: references
    /// to ConfigMaps, Secrets and the pod's namespace resolved, `$(VAR)`
    /// expanded from the variables defined before it.
    fn environment(&self, container: &Value) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for source in container["envFrom"].as_sequence().into_iter().flatten() {
            for (field, kind) in [("configMapRef", "ConfigMap"), ("secretRef", "Secret")] {
                if let Some(name) = source[field]["name"].as_str() {
                    env.extend(self.keys(kind, name));
                }
            }
        }
        for entry in container["env"].as_sequence().into_iter().flatten() {
            let name = entry["name"].as_str().unwrap().to_owned();
            let value = if let Some(value) = entry["value"].as_str() {
                expand(value, &env)
            } else {
                let from = &entry["valueFrom"];
                if from["fieldRef"]["fieldPath"].as_str() == Some("metadata.namespace") {
                    self.namespace()
                } else {
                    let (kind, reference) = if from["configMapKeyRef"].is_mapping() {
                        ("ConfigMap", &from["configMapKeyRef"])
                    } else {
                        ("Secret", &from["secretKeyRef"])
                    };
                    let source = reference["name"].as_str().unwrap();
                    let key = reference["key"].as_str().unwrap();
                    self.keys(kind, source)
                        .get(key)
                        .unwrap_or_else(|| panic!("{name}: {kind} {source} has no key {key}"))
                        .clone()
                }
            };
            env.insert(name, value);
        }
        env
    }
}

/// `$(NAME)` replaced by NAME's value; an undefined NAME stays as written,
/// which the kubelet does too (and the tests then see).
fn expand(value: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("$(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find(')').expect("closed $(");
        let name = &after[..end];
        match env.get(name) {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[start..start + end + 3]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers"]
        .into_iter()
        .flat_map(|field| pod[field].as_sequence().into_iter().flatten())
}

fn volume<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// (mountPath, volume) of a container's mounts.
fn mounts<'a>(pod: &'a Value, container: &'a Value) -> Vec<(&'a Value, &'a Value)> {
    container["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|m| (m, volume(pod, m["name"].as_str().unwrap())))
        .collect()
}

fn mount_of<'a>(pod: &'a Value, container: &'a Value, path: &str) -> (&'a Value, &'a Value) {
    mounts(pod, container)
        .into_iter()
        .find(|(m, _)| m["mountPath"].as_str() == Some(path))
        .unwrap_or_else(|| panic!("nothing is mounted at {path}"))
}

fn service_port(rendered: &Rendered, service: &str, port_name: &str) -> u64 {
    rendered.get("Service", service)["spec"]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|p| p["name"].as_str() == Some(port_name))
        .unwrap_or_else(|| panic!("Service {service} has no port {port_name}"))["port"]
        .as_u64()
        .unwrap()
}

fn odoo_conf_option(name: &str) -> String {
    read_repo_file("odoo/odoo.conf")
        .lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .unwrap_or_else(|| panic!("odoo.conf has no {name}"))
        .1
        .trim()
        .to_owned()
}

#[test]
fn kubernetes_validate_accepts_every_manifest() {
    let Some(validate) = tools::require("kubernetes-validate") else {
        return;
    };
    let dir = repo_root().join("deploy/kubernetes");
    tools::run_ok(
        Command::new(validate)
            .current_dir(&dir)
            .args(["--strict", "--quiet"])
            .args(resources()),
    );
}

#[test]
fn the_kustomization_renders_to_valid_manifests() {
    let Some(validate) = tools::require("kubernetes-validate") else {
        return;
    };
    let Some(rendered) = render() else {
        return;
    };
    let scratch = ScratchDir::new("kustomize");
    let file = scratch.write("rendered.yaml", &rendered);
    // The oldest and the newest schemas kubernetes-validate 1.37 ships.
    for version in ["1.29.0", "1.37.0"] {
        tools::run_ok(
            Command::new(&validate)
                .args(["--strict", "--quiet", "--kubernetes-version", version])
                .arg(&file),
        );
    }
    let documents = parse_documents(&rendered);
    let kinds: Vec<&str> = documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "Deployment",
        "Job",
        "Ingress",
        "Service",
        "ConfigMap",
        "Secret",
    ] {
        assert!(kinds.contains(&kind), "no {kind} rendered");
    }
}

#[test]
fn platform_deployments_probe_health_and_read_config_and_secret() {
    for file in ["admin.yaml", "portal.yaml", "worker.yaml"] {
        let document = &documents(file)[0];
        let name = document["metadata"]["name"].as_str().unwrap().to_owned();
        let pod = &document["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"].as_str(),
            Some("/healthz"),
            "{name}"
        );
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"].as_str(),
            Some("/readyz"),
            "{name}"
        );
        let sources = serde_yaml::to_string(&container["envFrom"]).unwrap();
        assert!(
            sources.contains("odoo-saas-config") && sources.contains("odoo-saas-secrets"),
            "{name}"
        );
    }
    let deployments: Vec<String> = resources()
        .iter()
        .flat_map(|f| documents(f))
        .filter(|d| d["kind"].as_str() == Some("Deployment"))
        .map(|d| d["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deployments, ["admin", "portal", "worker", "odoo", "nginx"]);
}

#[test]
fn config_map_and_secret_carry_every_variable_the_code_reads() {
    let configmap = &documents("configmap.yaml")[0]["data"];
    let secret = &documents("secret.yaml")[0]["stringData"];
    let documented: Vec<String> = envfile::parse(&read_repo_file(".env.example"))
        .into_iter()
        .map(|e| e.key)
        .collect();
    for var in saas_core::config::KNOWN_VARS {
        let in_configmap = configmap.get(*var).is_some();
        let in_secret = secret.get(*var).is_some();
        assert!(
            in_configmap ^ in_secret,
            "{var} must be in exactly one of the ConfigMap and the Secret"
        );
    }
    for mapping in [configmap, secret] {
        for key in mapping.as_mapping().unwrap().keys() {
            let key = key.as_str().unwrap();
            assert!(
                documented.iter().any(|d| d == key),
                "{key} is not a variable of .env.example"
            );
        }
    }
    assert_eq!(
        configmap["APP_ENV"].as_str(),
        Some("production"),
        "production refuses the placeholder secrets"
    );
}

#[test]
fn every_config_map_and_secret_key_a_pod_reads_exists() {
    let Some(rendered) = Rendered::load() else {
        return;
    };
    for (workload, pod) in rendered.pods() {
        for container in containers(pod) {
            // Resolves every configMapKeyRef/secretKeyRef (panics on a
            // missing key) and every envFrom source.
            let env = rendered.environment(container);
            for (name, value) in &env {
                assert!(
                    !value.contains("$("),
                    "{workload}: {name}={value} refers to a variable not defined before it"
                );
            }
        }
        for volume in pod["volumes"].as_sequence().into_iter().flatten() {
            if let Some(name) = volume["configMap"]["name"].as_str() {
                assert!(
                    rendered.find("ConfigMap", name).is_some(),
                    "{workload}: volume of missing ConfigMap {name}"
                );
            }
            if let Some(claim) = volume["persistentVolumeClaim"]["claimName"].as_str() {
                rendered.get("PersistentVolumeClaim", claim);
            }
        }
    }
}

#[test]
fn config_files_are_mounted_as_files_of_existing_keys() {
    let Some(rendered) = Rendered::load() else {
        return;
    };
    let mut config_mounts = 0;
    for (workload, pod) in rendered.pods() {
        for container in containers(pod) {
            for (mount, volume) in mounts(pod, container) {
                let Some(config_map) = volume["configMap"]["name"].as_str() else {
                    continue;
                };
                config_mounts += 1;
                let path = mount["mountPath"].as_str().unwrap();
                let key = mount["subPath"].as_str().unwrap_or_else(|| {
                    panic!("{workload}: {path} mounts ConfigMap {config_map} as a directory")
                });
                assert!(
                    rendered.keys("ConfigMap", config_map).contains_key(key),
                    "{workload}: {path}: ConfigMap {config_map} has no key {key}"
                );
                assert!(
                    path.ends_with(&format!("/{key}")),
                    "{workload}: {path} is not named after its key {key}"
                );
            }
        }
    }
    assert!(
        config_mounts >= 20,
        "only {config_mounts} config files mounted"
    );
}

#[test]
fn the_generated_config_maps_hold_the_repository_files_unchanged() {
    let Some(rendered) = Rendered::load() else {
        return;
    };
    let odoo = rendered.keys("ConfigMap", &rendered.generated("odoo-files"));
    for file in [
        "odoo.conf",
        "odoo-entrypoint.sh",
        "build-templates.sh",
        "seal-template.sql",
        "warm-assets.py",
    ] {
        assert_eq!(
            odoo[file],
            read_repo_file(&format!("odoo/{file}")),
            "{file}"
        );
    }
    // Every file compose mounts into the nginx container, at the same path.
    let compose = read_yaml("compose.yml");
    let pod = rendered.pod("Deployment", "nginx");
    let container = &pod["containers"][0];
    let mut checked = 0;
    for mount in compose["services"]["nginx"]["volumes"]
        .as_sequence()
        .unwrap()
    {
        let mut parts = mount.as_str().unwrap().split(':');
        let (host, target) = (parts.next().unwrap(), parts.next().unwrap());
        let Some(relative) = host.strip_prefix("./") else {
            continue;
        };
        let local = repo_root().join(relative);
        let files: Vec<(String, String)> = if local.is_dir() {
            let mut files = Vec::new();
            collect_files(&local, &local, &mut files);
            files
                .into_iter()
                .map(|(rel, text)| (format!("{target}/{rel}"), text))
                .collect()
        } else {
            vec![(target.to_owned(), std::fs::read_to_string(&local).unwrap())]
        };
        for (path, text) in files {
            let (mount, volume) = mount_of(pod, container, &path);
            let config_map = volume["configMap"]["name"].as_str().unwrap();
            let key = mount["subPath"].as_str().unwrap();
            assert_eq!(rendered.keys("ConfigMap", config_map)[key], text, "{path}");
            if path.starts_with("/docker-entrypoint.d/") {
                let mode = volume["configMap"]["defaultMode"].as_u64().unwrap_or(0o644);
                assert_eq!(mode & 0o111, 0o111, "{path} must be executable");
            }
            checked += 1;
        }
    }
    assert!(checked >= 17, "{checked} nginx files");
}

fn collect_files(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

#[test]
fn no_container_runs_privileged_or_as_root() {
    let Some(rendered) = Rendered::load() else {
        return;
    };
    let pods = rendered.pods();
    assert_eq!(
        pods.len(),
        6,
        "admin, portal, worker, odoo, nginx, odoo-templates"
    );
    for (workload, pod) in pods {
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true),
            "{workload}"
        );
        assert!(
            pod["securityContext"]["runAsUser"].as_u64().unwrap() > 0,
            "{workload}"
        );
        assert_eq!(pod["hostNetwork"].as_bool(), None, "{workload}");
        assert_eq!(pod["hostPID"].as_bool(), None, "{workload}");
        assert_eq!(
            pod["enableServiceLinks"].as_bool(),
            Some(false),
            "{workload}"
        );
        for volume in pod["volumes"].as_sequence().into_iter().flatten() {
            assert!(volume["hostPath"].is_null(), "{workload}: hostPath volume");
        }
        for container in containers(pod) {
            let security = &container["securityContext"];
            assert_ne!(security["privileged"].as_bool(), Some(true), "{workload}");
            assert_eq!(
                security["allowPrivilegeEscalation"].as_bool(),
                Some(false),
                "{workload}"
            );
            assert_eq!(
                serde_yaml::to_string(&security["capabilities"]["drop"])
                    .unwrap()
                    .trim(),
                "- ALL",
                "{workload}"
            );
            assert!(security["capabilities"]["add"].is_null(), "{workload}");
            let resources = &container["resources"];
            assert!(
                resources["requests"]["memory"].is_string()
                    && resources["limits"]["memory"].is_string(),
                "{workload}: memory request and limit"
            );
        }
    }
}

#[test]
fn odoo_serves_web_and_websocket_ports_with_the_repository_configuration() {
    let Some(rendered) = Rendered::load() else {
        return;
    };
    let http_port: u64 = odoo_conf_option("http_port").parse().unwrap();
    let gevent_port: u64 = odoo_conf_option("gevent_port").parse().unwrap();
    assert_eq!(service_port(&rendered, "odoo", "http"), http_port);
    assert_eq!(service_port(&rendered, "odoo", "websocket"), gevent_port);
    let pod = rendered.pod("Deployment", "odoo");
    let container = &pod["containers"][0];
    let declared: Vec<(String, u64)> = container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().into(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        declared,
        [
            ("http".into(), http_port),
            ("websocket".into(), gevent_port)
        ]
    );
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(
            container[probe]["httpGet"]["path"].as_str(),
            Some("/web/health"),
            "{probe}"
        );
    }

    // The compose service's entrypoint, command and environment names.
    let compose = read_yaml("compose.yml");
    let names = |service: &str| -> Vec<String> {
        let mut names: Vec<String> = compose["services"][service]["environment"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    let odoo_env = rendered.environment(container);
    assert_eq!(odoo_env.keys().cloned().collect::<Vec<_>>(), names("odoo"));
    assert_eq!(
        container["command"],
        compose["services"]["odoo"]["entrypoint"]
    );
    assert_eq!(container["args"], compose["services"]["odoo"]["command"]);

    let job_pod = rendered.pod("Job", "odoo-templates");
    let job = &job_pod["containers"][0];
    let job_env = rendered.environment(job);
    assert_eq!(
        job_env.keys().cloned().collect::<Vec<_>>(),
        names("odoo-templates")
    );
    assert_eq!(
        job["command"],
        compose["services"]["odoo-templates"]["entrypoint"]
    );
    assert_eq!(job_env["ODOO_TEMPLATES"], envfile_value("ODOO_TEMPLATES"));
    assert_eq!(job_pod["restartPolicy"].as_str(), Some("OnFailure"));

    // The files the commands run are mounted where they are looked for.
    for (pod, container, files) in [
        (pod, container, &["odoo.conf", "odoo-entrypoint.sh"][..]),
        (
            job_pod,
            job,
            &[
                "odoo.conf",
                "build-templates.sh",
                "seal-template.sql",
                "warm-assets.py",
            ][..],
        ),
    ] {
        for file in files {
            mount_of(pod, container, &format!("/etc/odoo-saas/{file}"));
        }
    }

    // Both reach the database of DATABASE_URL as the Odoo role.
    let url = rendered.keys("Secret", "odoo-saas-secrets")["DATABASE_URL"].clone();
    let server = url.split('@').nth(1).unwrap().split('/').next().unwrap();
    for env in [&odoo_env, &job_env] {
        assert_eq!(format!("{}:{}", env["HOST"], env["PORT"]), server);
        assert_eq!(env["USER"], rendered.config("ODOO_DB_USER"));
    }
}

fn envfile_value(key: &str) -> String {
    envfile::resolve(&envfile::parse(&read_repo_file(".env.example")))[key].clone()
}

#[test]
fn odoo_worker_and_templates_job_share_one_read_write_many_filestore() {
    let Some(rendered) = Rendered::load() else {
        return;
    };
    let filestore_root = rendered.config("ODOO_FILESTORE_ROOT");
    for (kind, name) in [
        ("Deployment", "odoo"),
        ("Job", "odoo-templates"),
        ("Deployment", "worker"),
    ] {
        let pod = rendered.pod(kind, name);
        let (mount, volume) = mount_of(pod, &pod["containers"][0], "/var/lib/odoo");
        assert_ne!(mount["readOnly"].as_bool(), Some(true), "{name}");
        assert_eq!(
            volume["persistentVolumeClaim"]["claimName"].as_str(),
            Some("odoo-filestore"),
            "{name}"
        );
        assert!(filestore_root.starts_with("/var/lib/odoo/"));
    }
    let claim = rendered.get("PersistentVolumeClaim", "odoo-filestore");
    assert_eq!(
        serde_yaml::to_string(&claim["spec"]["accessModes"])
            .unwrap()
            .trim(),
        "- ReadWriteMany"
    );
}

/// The nginx Deployment's environment plus what its entrypoint derives.
fn nginx_environment(rendered: &Rendered) -> BTreeMap<String, String> {
    let pod = rendered.pod("Deployment", "nginx");
    let mut env = rendered.environment(&pod["containers"][0]);
    let domain = env["BASE_DOMAIN"].clone();
    env.insert("BASE_DOMAIN_REGEX".into(), domain.replace('.', "\\."));
    // Derived from /etc/resolv.conf in the pod: the cluster DNS.
    env.insert("NGINX_RESOLVER".into(), "127.0.0.1".into());
    env
}

#[test]
fn nginx_upstreams_and_routing_map_point_at_the_services() {
    let Some(rendered) = Rendered::load() else {
        return;
    };
    let env = nginx_environment(&rendered);
    let namespace = rendered.namespace();
    // nginx's resolver does not apply search domains: full Service names.
    let fqdn = |service: &str, port: u64| format!("{service}.{namespace}.svc.cluster.local:{port}");
    assert_eq!(
        env["ADMIN_UPSTREAM"],
        fqdn("admin", service_port(&rendered, "admin", "http"))
    );
    assert_eq!(
        env["PORTAL_UPSTREAM"],
        fqdn("portal", service_port(&rendered, "portal", "http"))
    );
    assert_eq!(
        rendered.config("ODOO_UPSTREAM"),
        fqdn("odoo", service_port(&rendered, "odoo", "http")),
        "the worker writes ODOO_UPSTREAM into the routing map"
    );
    assert_eq!(
        env["ODOO_WEBSOCKET_PORT"].parse::<u64>().unwrap(),
        service_port(&rendered, "odoo", "websocket")
    );
    assert_eq!(env["MAX_UPLOAD_MB"], rendered.config("MAX_UPLOAD_MB"));
    assert_eq!(env["BASE_DOMAIN"], rendered.config("BASE_DOMAIN"));
    let compose = read_yaml("compose.yml");
    for (name, _) in compose["services"]["nginx"]["environment"]
        .as_mapping()
        .unwrap()
    {
        assert!(
            env.contains_key(name.as_str().unwrap()),
            "nginx lacks {name:?}"
        );
    }

    // The worker writes the map into the claim nginx reads it from.
    let map_path = rendered.config("ROUTING_MAP_PATH");
    let (map_dir, _) = map_path.rsplit_once('/').unwrap();
    assert_eq!(env["ROUTING_MAP_DIR"], map_dir);
    let claim_at = |name: &str, read_only: bool| {
        let pod = rendered.pod("Deployment", name);
        let (mount, volume) = mount_of(pod, &pod["containers"][0], map_dir);
        assert_eq!(
            mount["readOnly"].as_bool().unwrap_or(false),
            read_only,
            "{name}"
        );
        volume["persistentVolumeClaim"]["claimName"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(claim_at("worker", false), claim_at("nginx", true));
    let nginx_port = env["NGINX_LISTEN_PORT"].parse::<u64>().unwrap();
    let nginx_pod = rendered.pod("Deployment", "nginx");
    assert_eq!(
        nginx_pod["containers"][0]["ports"][0]["containerPort"].as_u64(),
        Some(nginx_port)
    );
    assert_eq!(
        nginx_pod["containers"][0]["livenessProbe"]["httpGet"]["path"].as_str(),
        Some("/healthz")
    );
}

#[test]
fn nginx_accepts_the_configuration_rendered_with_the_kubernetes_environment() {
    let Some(nginx) = tools::require("nginx") else {
        return;
    };
    let Some(rendered) = Rendered::load() else {
        return;
    };
    let mut env = nginx_environment(&rendered);
    // Loopback for the test; the rest exactly as the pod gets it.
    env.insert(
        "NGINX_LISTEN_PORT".into(),
        saas_deploy_checks::free_port().to_string(),
    );
    let prefix = NginxPrefix::with_vars(env.clone());
    prefix.write_routing_map(&format!(
        "acme {};\nsleepy suspended;\n",
        rendered.config("ODOO_UPSTREAM")
    ));
    // TLS ends at the Ingress, which talks plain HTTP to nginx: its
    // 16-https.sh must find no certificate, make none and redirect nothing
    // (a redirect would loop).
    let vars: Vec<(&str, &str)> = [
        "NGINX_HTTPS_LISTEN_PORT",
        "PUBLIC_SCHEME",
        "PUBLIC_PORT",
        "TLS_SELF_SIGNED",
    ]
    .iter()
    .map(|name| (*name, env[*name].as_str()))
    .collect();
    let (ok, output) = prefix.run_https_script(&vars);
    assert!(ok && output.contains("HTTP only"), "{output}");
    assert!(!prefix.scratch.path().join("conf.d/https").exists());
    tools::run_ok(Command::new(&nginx).args(prefix.args()).arg("-t"));
}

#[test]
fn the_ingress_sends_every_public_host_to_nginx_only() {
    let Some(rendered) = Rendered::load() else {
        return;
    };
    let domain = rendered.config("BASE_DOMAIN");
    let ingress = rendered.get("Ingress", "odoo-saas");
    let expected: Vec<String> = ["admin", "portal", "*"]
        .iter()
        .map(|l| format!("{l}.{domain}"))
        .collect();
    let hosts: Vec<String> = ingress["spec"]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|rule| {
            for path in rule["http"]["paths"].as_sequence().unwrap() {
                let service = &path["backend"]["service"];
                assert_eq!(service["name"].as_str(), Some("nginx"));
                let port = service["port"]["name"].as_str().unwrap();
                service_port(&rendered, "nginx", port);
                assert_eq!(path["path"].as_str(), Some("/"));
            }
            rule["host"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(hosts, expected);
    let tls: Vec<String> = ingress["spec"]["tls"][0]["hosts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tls, expected);
    assert_eq!(
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"].as_str(),
        Some(format!("{}m", rendered.config("MAX_UPLOAD_MB")).as_str())
    );
    // Nothing else is reachable from outside the cluster.
    for service in rendered.of_kind("Service") {
        let kind = service["spec"]["type"].as_str().unwrap_or("ClusterIP");
        assert_eq!(kind, "ClusterIP", "{:?}", service["metadata"]["name"]);
    }
    // admin and portal answer through nginx, whose headers forbid framing
    // by other sites on every answer.
    let headers = read_repo_file("nginx/snippets/security-headers.conf");
    assert!(headers.contains("add_header X-Frame-Options SAMEORIGIN always;"));
    for template in [
        "odoo-saas-20-admin.conf.template",
        "odoo-saas-30-portal.conf.template",
    ] {
        assert!(
            read_repo_file(&format!("nginx/templates/{template}"))
                .contains("include snippets/security-headers.conf;"),
            "{template}"
        );
    }
    let pod = rendered.pod("Deployment", "nginx");
    mount_of(
        pod,
        &pod["containers"][0],
        "/etc/nginx/snippets/security-headers.conf",
    );
}
