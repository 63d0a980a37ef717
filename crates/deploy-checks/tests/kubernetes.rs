//! deploy/kubernetes: every manifest valid against the Kubernetes schemas
//! (kubernetes-validate, offline), the kustomization renders (kubectl
//! kustomize, where kubectl exists), and the Deployments are wired as
//! issue 7 asks.

use std::process::Command;

use saas_deploy_checks::{
    envfile, read_repo_file, read_yaml, repo_root, scratch::ScratchDir, tools,
};

fn resources() -> Vec<String> {
    read_yaml("deploy/kubernetes/kustomization.yaml")["resources"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

fn documents(file: &str) -> Vec<serde_yaml::Value> {
    let text = read_repo_file(&format!("deploy/kubernetes/{file}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
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
    let Some(kubectl) = tools::find("kubectl") else {
        eprintln!(
            "SKIPPED: kubectl is not installed; each resource is validated on its own instead"
        );
        return;
    };
    let output = tools::run_ok(
        Command::new(kubectl)
            .arg("kustomize")
            .arg(repo_root().join("deploy/kubernetes")),
    );
    let scratch = ScratchDir::new("kustomize");
    let rendered = scratch.write("rendered.yaml", &String::from_utf8(output.stdout).unwrap());
    tools::run_ok(
        Command::new(validate)
            .args(["--strict", "--quiet"])
            .arg(rendered),
    );
}

#[test]
fn deployments_probe_health_and_read_config_and_secret() {
    let mut deployments = 0;
    for file in resources() {
        for document in documents(&file) {
            if document["kind"].as_str() != Some("Deployment") {
                continue;
            }
            deployments += 1;
            let name = document["metadata"]["name"].as_str().unwrap().to_owned();
            let pod = &document["spec"]["template"]["spec"];
            assert_eq!(
                pod["securityContext"]["runAsNonRoot"].as_bool(),
                Some(true),
                "{name}"
            );
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
    }
    assert_eq!(deployments, 3, "admin, portal and worker");
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
