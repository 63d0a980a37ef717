//! External tools: found on PATH (or next to the Python in use, where pip
//! puts console scripts); missing ones fail the check in CI and skip it
//! elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where `name` is, or `None` after printing why the check is skipped.
/// With `CI` set a missing tool fails the test: `.ci/deploy-tools.sh`
/// installs every tool these checks use.
pub fn require(name: &str) -> Option<PathBuf> {
    if let Some(path) = find(name) {
        return Some(path);
    }
    let message = format!("{name} is not installed (bash .ci/deploy-tools.sh installs it)");
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("SKIPPED: {message}");
    None
}

/// `name` on PATH, or in a few places package managers install to that a
/// minimal PATH may lack.
pub fn find(name: &str) -> Option<PathBuf> {
    // pip's copies first: Debian's podman-compose is too old for `config`.
    let from_pip = PIP_TOOLS.contains(&name).then(python_scripts_dir).flatten();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/sbin", "/usr/local/bin", "/usr/local/sbin"].map(PathBuf::from);
    from_pip
        .into_iter()
        .chain(std::env::split_paths(&path))
        .chain(extra)
        .chain(python_scripts_dir())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Installed from PyPI by `.ci/deploy-tools.sh`.
const PIP_TOOLS: &[&str] = &["hadolint", "kubernetes-validate", "podman-compose"];

fn python_scripts_dir() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs `command`, panicking with its output when it fails.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("could not run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `command` and returns whether it succeeded plus everything it printed.
pub fn run(command: &mut Command) -> (bool, String) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("could not run {command:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
