//! The Containerfile: clean under hadolint, one builder stage that cooks the
//! dependencies once and builds admin, portal and worker together, three
//! small runtime targets (non-root, the worker with the PostgreSQL 15 client
//! tools and Odoo's uid 101), no HEALTHCHECK (podman's OCI images drop it;
//! compose.yml carries the checks), and compose builds the three targets one
//! after the other so the builder stage runs once. No image can be built
//! here (base images cannot be pulled): `podman build` itself is not run.

use std::collections::BTreeMap;
use std::process::Command;

use saas_deploy_checks::{
    compose, read_repo_file, read_yaml, repo_root, scratch::ScratchDir, tools,
};

const SERVICES: [(&str, u16); 3] = [("admin", 5000), ("portal", 5001), ("worker", 5002)];

/// The stages of the Containerfile as (name, text from its FROM line on).
fn stages() -> BTreeMap<String, String> {
    let file = read_repo_file("Containerfile");
    let mut stages = BTreeMap::new();
    let starts: Vec<usize> = file
        .match_indices("\nFROM ")
        .map(|(at, _)| at + 1)
        .collect();
    for (i, start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).copied().unwrap_or(file.len());
        let text = &file[*start..end];
        let first = text.lines().next().unwrap();
        let name = first
            .split_once(" AS ")
            .map(|(_, name)| name.trim().to_owned())
            .unwrap_or_else(|| panic!("Containerfile: name every stage: {first}"));
        stages.insert(name, text.to_owned());
    }
    stages
}

#[test]
fn hadolint_accepts_the_containerfile() {
    let Some(hadolint) = tools::require("hadolint") else {
        return;
    };
    tools::run_ok(Command::new(&hadolint).current_dir(repo_root()).args([
        "--no-color",
        "--failure-threshold",
        "info",
        "Containerfile",
    ]));
    for old in [
        "Containerfile.admin",
        "Containerfile.portal",
        "Containerfile.worker",
    ] {
        assert!(
            !repo_root().join(old).exists(),
            "{old} is back: one Containerfile builds all three images"
        );
    }
}

#[test]
fn one_builder_stage_cooks_once_and_builds_the_three_binaries() {
    let stages = stages();
    let builder = &stages["builder"];
    let position = |needle: &str| {
        builder
            .find(needle)
            .unwrap_or_else(|| panic!("builder stage lacks {needle:?}"))
    };
    assert!(
        position("cargo chef cook") < position("COPY . .\nRUN cargo build"),
        "dependencies must be cooked before the source is copied"
    );
    assert_eq!(builder.matches("cargo chef cook").count(), 1);
    assert_eq!(builder.matches("cargo build").count(), 1);
    let file = read_repo_file("Containerfile");
    assert_eq!(
        file.matches("cargo chef cook").count(),
        1,
        "the dependencies are cooked in one place"
    );
    for (service, _) in SERVICES {
        assert!(
            builder.contains(&format!("--package {service}"))
                && builder.contains(&format!("--bin {service}")),
            "the builder stage cooks for and builds {service}"
        );
    }
}

#[test]
fn runtime_targets_copy_their_binary_run_unprivileged_and_leave_health_to_compose() {
    let stages = stages();
    let file = read_repo_file("Containerfile");
    assert!(
        !file
            .lines()
            .any(|l| l.trim_start().starts_with("HEALTHCHECK")),
        "podman drops HEALTHCHECK from OCI images; compose.yml's health checks count"
    );
    assert!(stages["runtime"].starts_with("FROM ${RUNTIME_IMAGE} AS runtime"));
    assert!(file.contains("debian:bookworm-slim"));
    assert!(!file.contains(":latest"), "pin image tags");
    for (service, port) in SERVICES {
        let stage = &stages[service];
        assert!(
            stage.starts_with(&format!("FROM runtime AS {service}")),
            "{service} builds on the shared runtime stage"
        );
        assert!(stage.contains(&format!(
            "COPY --from=builder /src/target/release/{service} /usr/local/bin/{service}"
        )));
        assert_eq!(
            stage.matches("COPY").count(),
            1,
            "{service} copies only its binary"
        );
        assert!(
            stage.contains("USER 101:101"),
            "{service}: run as uid 101, not root"
        );
        assert!(stage.contains(&format!("EXPOSE {port}")));
        assert!(stage.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{service}\"]")));
    }

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
        stages["worker"].contains(&format!("postgresql-client-{server_major}")),
        "the worker's pg_dump must match the server's major version {server_major}"
    );
    assert!(
        !stages["admin"].contains("postgresql-client"),
        "only the worker needs the PostgreSQL client"
    );
}

#[test]
fn compose_builds_each_image_from_its_target_keeping_the_tags() {
    let services = compose::services("compose.yml");
    for (service, _) in SERVICES {
        let definition = &services[service];
        assert_eq!(definition["build"]["context"].as_str(), Some("."));
        assert_eq!(
            definition["build"]["dockerfile"].as_str(),
            Some("Containerfile")
        );
        assert_eq!(definition["build"]["target"].as_str(), Some(service));
        assert_eq!(
            definition["image"].as_str(),
            Some(format!("localhost/odoo-saas-{service}:${{APP_IMAGE_TAG:?}}").as_str())
        );
    }
}

/// One `podman build` the stand-in podman saw: when it started and ended.
#[derive(Debug)]
struct Build {
    start: f64,
    end: f64,
    args: String,
}

/// The builds `podman-compose [--parallel LIMIT] build` runs, by target:
/// podman-compose's real scheduling, with a podman that takes 0.4 s a build.
fn builds(parallel: Option<&str>) -> Option<BTreeMap<String, Build>> {
    let podman_compose = tools::require("podman-compose")?;
    let scratch = ScratchDir::new("build-order");
    let log = scratch.path().join("builds.log");
    let stub = format!(
        "[ \"$1\" = build ] || exit 0\n\
         echo \"start $(date +%s.%N) $*\" >> '{log}'\n\
         sleep 0.4\n\
         echo \"end $(date +%s.%N) $*\" >> '{log}'\n",
        log = log.display()
    );
    let mut command = compose::podman_compose(
        &podman_compose,
        &scratch,
        &repo_root().join(".env.example"),
        &stub,
    );
    if let Some(limit) = parallel {
        command.args(["--parallel", limit]);
    }
    tools::run_ok(command.args(["-f", "compose.yml", "build"]));
    let mut builds: BTreeMap<String, Build> = BTreeMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        let mut words = line.splitn(3, ' ');
        let (event, time, args) = (
            words.next().unwrap(),
            words.next().unwrap().parse::<f64>().unwrap(),
            words.next().unwrap().to_owned(),
        );
        let target = args
            .split_once("--target ")
            .map(|(_, rest)| rest.split(' ').next().unwrap().to_owned())
            .unwrap_or_else(|| panic!("a build without --target: {args}"));
        let build = builds.entry(target).or_insert(Build {
            start: 0.0,
            end: 0.0,
            args,
        });
        match event {
            "start" => build.start = time,
            _ => build.end = time,
        }
    }
    Some(builds)
}

/// Whether any two builds ran at the same time.
fn overlap(builds: &BTreeMap<String, Build>) -> bool {
    let mut spans: Vec<(f64, f64)> = builds.values().map(|b| (b.start, b.end)).collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    spans.windows(2).any(|pair| pair[1].0 < pair[0].1)
}

/// podman-compose starts every service's build at once, and builds started
/// together each run the builder stage (nothing is in the cache yet); with
/// `--parallel 1`, as README.md runs it, they run one after the other, so
/// the second and third find the builder stage's layers in the cache.
#[test]
fn podman_compose_with_parallel_1_builds_the_targets_one_after_the_other() {
    let Some(sequential) = builds(Some("1")) else {
        return;
    };
    assert_eq!(
        sequential.keys().map(String::as_str).collect::<Vec<_>>(),
        ["admin", "portal", "worker"],
        "one build per image"
    );
    let containerfile = format!("-f {}", repo_root().join("Containerfile").display());
    for (target, build) in &sequential {
        assert!(
            build.args.contains(&containerfile)
                && build
                    .args
                    .contains(&format!("-t localhost/odoo-saas-{target}:dev")),
            "{target}: {}",
            build.args
        );
    }
    assert!(
        !overlap(&sequential),
        "builds overlapped with --parallel 1: {sequential:#?}"
    );
    let unlimited = builds(None).unwrap();
    assert!(
        overlap(&unlimited),
        "podman-compose no longer starts the builds together ({unlimited:#?}): \
         `--parallel 1` in README.md may be unnecessary now"
    );

    let readme = read_repo_file("README.md");
    let first_block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|block| block.split("```").next())
        .unwrap();
    assert!(
        first_block.contains("podman-compose --parallel 1 up -d --build"),
        "README.md's first command must build the images one after the other: {first_block}"
    );
}

#[test]
fn the_build_context_leaves_out_what_the_images_do_not_need() {
    let ignore = read_repo_file(".containerignore");
    for entry in ["target/", ".git", ".env", "Containerfile", "compose*.yml"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".containerignore lacks {entry}"
        );
    }
    assert!(
        !ignore
            .lines()
            .any(|l| ["crates", "crates/", "Cargo.lock", "Cargo.toml"].contains(&l.trim()))
    );
}
