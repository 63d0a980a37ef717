//! Containerfile.{admin,portal,worker}: clean under hadolint, and built the
//! way issue 7 asks (cached dependency layer, non-root, health check; the
//! worker with the PostgreSQL 15 client tools and Odoo's uid 101).

use std::process::Command;

use saas_deploy_checks::{read_repo_file, read_yaml, repo_root, tools};

const SERVICES: [(&str, u16); 3] = [("admin", 5000), ("portal", 5001), ("worker", 5002)];

#[test]
fn hadolint_accepts_the_containerfiles() {
    let Some(hadolint) = tools::require("hadolint") else {
        return;
    };
    let root = repo_root();
    for (service, _) in SERVICES {
        tools::run_ok(
            Command::new(&hadolint)
                .current_dir(&root)
                .args(["--no-color", "--failure-threshold", "info"])
                .arg(format!("Containerfile.{service}")),
        );
    }
}

#[test]
fn images_cache_dependencies_run_unprivileged_and_check_health() {
    for (service, port) in SERVICES {
        let file = read_repo_file(&format!("Containerfile.{service}"));
        let position = |needle: &str| {
            file.find(needle)
                .unwrap_or_else(|| panic!("Containerfile.{service} lacks {needle:?}"))
        };
        assert!(
            position("cargo chef cook") < position("COPY . .\nRUN cargo build"),
            "Containerfile.{service}: dependencies must be cooked before the source is copied"
        );
        assert!(file.contains(&format!("--package {service} --bin {service}")));
        assert!(
            file.contains("USER 101:101"),
            "Containerfile.{service}: run as uid 101, not root"
        );
        assert!(file.contains("HEALTHCHECK") && file.contains("/healthz"));
        assert!(file.contains(&format!("EXPOSE {port}")));
        assert!(file.contains("FROM ${RUNTIME_IMAGE}") && file.contains("debian:bookworm-slim"));
        assert!(
            !file.contains(":latest"),
            "Containerfile.{service}: pin image tags"
        );
    }
    let worker = read_repo_file("Containerfile.worker");
    let compose = read_yaml("compose.yml");
    let postgres_image = compose["services"]["postgres"]["image"].as_str().unwrap();
    assert_eq!(postgres_image, "${POSTGRES_IMAGE:?}");
    let env = read_repo_file(".env.example");
    let server_major = env
        .lines()
        .find_map(|l| l.strip_prefix("POSTGRES_IMAGE=docker.io/library/postgres:"))
        .and_then(|tag| tag.split('.').next())
        .expect("POSTGRES_IMAGE pins postgres:<major>.<minor>");
    assert!(
        worker.contains(&format!("postgresql-client-{server_major}")),
        "the worker's pg_dump must match the server's major version {server_major}"
    );
}

#[test]
fn the_build_context_leaves_out_what_the_images_do_not_need() {
    let ignore = read_repo_file(".containerignore");
    for entry in ["target/", ".git", ".env"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".containerignore lacks {entry}"
        );
    }
    assert!(
        !ignore
            .lines()
            .any(|l| ["crates", "crates/", "Cargo.lock"].contains(&l.trim()))
    );
}
