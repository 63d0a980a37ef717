//! compose.yml and compose.debug.yml as files (their services and published
//! ports, with `.env.example` substituted) and as podman-compose runs them
//! (with a stand-in `podman`, since no container can run here).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::{envfile, read_repo_file, read_yaml, repo_root, scratch::ScratchDir, template};

/// The stack, and the override that publishes its internal services.
pub const FILES: [&str; 2] = ["compose.yml", "compose.debug.yml"];

/// The services of one compose file, by name.
pub fn services(file: &str) -> serde_yaml::Mapping {
    read_yaml(file)["services"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{file} has services"))
        .clone()
}

/// `.env.example` with its `${NAME}` references resolved.
pub fn env_example() -> BTreeMap<String, String> {
    envfile::resolve(&envfile::parse(&read_repo_file(".env.example")))
}

/// One `ports:` entry, `${ADDRESS}:${HOST_PORT}:CONTAINER_PORT`.
#[derive(Debug, Clone)]
pub struct Published {
    pub file: &'static str,
    pub service: String,
    pub spec: String,
    /// The variable naming the host port, e.g. `NGINX_HTTP_HOST_PORT`.
    pub variable: String,
    /// Its value in `.env.example`.
    pub host_port: u16,
}

/// Every port `file` publishes, with `.env.example`'s values; panics on an
/// entry that is not `${ADDRESS}:${HOST_PORT}:CONTAINER_PORT`.
pub fn published(file: &'static str) -> Vec<Published> {
    let env = env_example();
    let mut found = Vec::new();
    for (service, definition) in services(file) {
        let service = service
            .as_str()
            .expect("service names are strings")
            .to_owned();
        for port in definition["ports"].as_sequence().into_iter().flatten() {
            let spec = port
                .as_str()
                .unwrap_or_else(|| panic!("{file}: {service}: use the short port syntax"))
                .to_owned();
            let plain = spec.replace(":?}", "}");
            let parts: Vec<&str> = plain.split(':').collect();
            assert_eq!(
                parts.len(),
                3,
                "{file}: {service}: {spec}: publish as ADDRESS:HOST_PORT:CONTAINER_PORT"
            );
            for part in &parts[..2] {
                assert!(
                    part.starts_with("${") && part.ends_with('}'),
                    "{file}: {service}: {spec}: host address and port must be .env variables"
                );
            }
            let variable = parts[1][2..parts[1].len() - 1].to_owned();
            let host_port = template::substitute(parts[1], &env)
                .unwrap_or_else(|e| panic!("{file}: {service}: {spec}: {e}"))
                .parse()
                .unwrap_or_else(|e| panic!("{file}: {service}: {spec}: {e}"));
            found.push(Published {
                file,
                service: service.clone(),
                spec,
                variable,
                host_port,
            });
        }
    }
    found
}

/// `podman-compose --env-file .env.example ARGS` in the repository, with a
/// stand-in `podman` that answers `--version` (all podman-compose asks
/// before parsing) and otherwise runs `stub_body` (a shell snippet; `$*` are
/// the arguments).
pub fn podman_compose(
    podman_compose: &Path,
    scratch: &ScratchDir,
    env_file: &Path,
    stub_body: &str,
) -> Command {
    let stub = scratch.write(
        "bin/podman",
        &format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'podman version 4.9.4'; exit 0; fi\n{stub_body}\n"
        ),
    );
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut command = Command::new(podman_compose);
    command
        .current_dir(repo_root())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", scratch.path())
        .arg("--podman-path")
        .arg(&stub)
        .arg("--env-file")
        .arg(env_file);
    command
}
