//! Helpers for the deployment checks in `tests/`: find the repository and
//! the external tools (nginx, openssl, promtool, amtool, hadolint, podman-compose,
//! shellcheck, kubectl, kubernetes-validate), read `.env.example`, YAML and
//! the compose files, render nginx templates the way the nginx image does,
//! pull metric names out of PromQL, and list what Odoo 18 accepts. The
//! checks themselves shell out to the real tools.

pub mod compose;
pub mod envfile;
pub mod grafana;
pub mod http;
pub mod metrics;
pub mod nginx;
pub mod odoo;
pub mod promql;
pub mod scratch;
pub mod stub;
pub mod template;
pub mod tools;

use std::path::{Path, PathBuf};

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root exists")
}

/// A file of the repository, read as text.
pub fn read_repo_file(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A YAML file of the repository, with `<<` merge keys applied.
pub fn read_yaml(relative: &str) -> serde_yaml::Value {
    let mut value: serde_yaml::Value = serde_yaml::from_str(&read_repo_file(relative))
        .unwrap_or_else(|e| panic!("{relative} is not valid YAML: {e}"));
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("{relative}: merge keys: {e}"));
    value
}

/// A port nothing listens on right now on 127.0.0.1, never the same twice
/// in one process: the kernel may hand a port just released to the next
/// `bind(0)`, and a test asking for an HTTP and an HTTPS port got one port
/// twice (nginx: "a duplicate listen"). The same rule as
/// `saas_testkit::free_port`, which this crate's library does not depend on.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0");
        let mut handed_out = HANDED_OUT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if handed_out.insert(port) {
            return port;
        }
    }
}
