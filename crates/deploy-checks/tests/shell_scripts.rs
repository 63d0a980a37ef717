//! Every shell script the stack and CI run (odoo/, nginx/, monitoring/,
//! scripts/, .ci/): clean under shellcheck, every finding including style.
//! A script is a file with a shell shebang or a `.sh`/`.envsh` name.

use std::path::{Path, PathBuf};
use std::process::Command;

use saas_deploy_checks::{repo_root, tools};

const DIRECTORIES: [&str; 5] = ["odoo", "nginx", "monitoring", "scripts", ".ci"];

fn is_shell_script(path: &Path) -> bool {
    let named = path.extension().is_some_and(|e| e == "sh" || e == "envsh");
    let first_line = std::fs::read(path)
        .ok()
        .and_then(|bytes| {
            let line = bytes.split(|b| *b == b'\n').next()?.to_vec();
            String::from_utf8(line).ok()
        })
        .unwrap_or_default();
    let shebang = first_line.starts_with("#!")
        && ["/sh", "/bash", " sh", " bash"]
            .iter()
            .any(|shell| first_line.trim_end().ends_with(shell));
    named || shebang
}

fn scripts_below(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            scripts_below(&path, found);
        } else if is_shell_script(&path) {
            found.push(path);
        }
    }
}

fn shell_scripts() -> Vec<PathBuf> {
    let root = repo_root();
    let mut found = Vec::new();
    for dir in DIRECTORIES {
        scripts_below(&root.join(dir), &mut found);
    }
    found.sort();
    found
}

#[test]
fn finds_the_scripts_of_every_directory() {
    let root = repo_root();
    let relative: Vec<String> = shell_scripts()
        .iter()
        .map(|p| p.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    for expected in [
        "odoo/build-templates.sh",
        "odoo/odoo-entrypoint.sh",
        "odoo/initdb/10-create-odoo-role.sh",
        "nginx/entrypoint.d/15-derived-variables.envsh",
        "nginx/entrypoint.d/16-https.sh",
        "nginx/entrypoint.d/40-reload-on-routing-change.sh",
        "monitoring/alertmanager/entrypoint.sh",
        "scripts/dev",
        ".ci/run",
        ".ci/deploy-tools.sh",
    ] {
        assert!(
            relative.iter().any(|p| p == expected),
            "{expected} not found among {relative:?}"
        );
    }
}

#[test]
fn shellcheck_finds_nothing_in_any_shell_script() {
    let Some(shellcheck) = tools::require("shellcheck") else {
        return;
    };
    let scripts = shell_scripts();
    assert!(scripts.len() >= 10, "{scripts:?}");
    for script in scripts {
        // From the script's directory, so `source` paths resolve as it runs.
        tools::run_ok(
            Command::new(&shellcheck)
                .current_dir(script.parent().unwrap())
                .args(["--external-sources", "--severity=style", "--format=gcc"])
                .arg(&script),
        );
    }
}
