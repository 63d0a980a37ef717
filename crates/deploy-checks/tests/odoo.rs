//! odoo/: `odoo.conf` names only options Odoo 18 has, with values of the
//! kind Odoo parses (it ignores an unknown key silently); the scripts pass
//! only flags and options Odoo 18 knows; and the file agrees with compose,
//! nginx and `.env.example` on ports and paths. The lists are data in
//! `saas_deploy_checks::odoo`, copied from Odoo 18.0's `odoo/tools/config.py`.
//! No Odoo runs here (its image cannot be pulled).

use saas_deploy_checks::odoo::{self, Kind};
use saas_deploy_checks::{compose, read_repo_file, read_yaml};

fn options() -> Vec<(String, String)> {
    let sections = odoo::parse_ini(&read_repo_file("odoo/odoo.conf"));
    let names: Vec<&str> = sections.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["options"],
        "odoo.conf: Odoo reads its settings from [options] only"
    );
    sections.into_iter().next().unwrap().1
}

fn option(name: &str) -> String {
    options()
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("odoo.conf lacks {name}"))
}

#[test]
fn odoo_conf_uses_only_odoo_18_options_with_values_odoo_parses() {
    let options = options();
    assert!(options.len() >= 15, "{options:?}");
    let mut seen = std::collections::BTreeSet::new();
    for (key, value) in &options {
        assert!(seen.insert(key.clone()), "odoo.conf: {key} is set twice");
        let kind = odoo::config_option(key).unwrap_or_else(|| {
            panic!("odoo.conf: Odoo 18 has no option {key:?} (it would be ignored)")
        });
        assert!(
            odoo::accepts(kind, value),
            "odoo.conf: {key} = {value:?} is not a {kind:?}"
        );
    }
}

#[test]
fn the_scripts_use_only_odoo_18_flags_and_options() {
    let script = read_repo_file("odoo/build-templates.sh");
    // Every odoo command: the module install and the temporary asset server.
    let lines: Vec<&str> = script.lines().collect();
    let commands: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with("odoo --config"))
        .map(|(start, _)| {
            // The command runs on while a line ends with a backslash.
            let end = (start..lines.len())
                .find(|&i| !lines[i].trim_end().ends_with('\\'))
                .unwrap_or(lines.len() - 1);
            lines[start..=end].join("\n")
        })
        .collect();
    assert_eq!(commands.len(), 2, "odoo commands in build-templates.sh");
    for command in &commands {
        let flags: Vec<&str> = command
            .split_whitespace()
            .filter(|word| word.starts_with("--"))
            .map(|word| word.split('=').next().unwrap())
            .collect();
        assert!(
            flags.len() >= 10,
            "the odoo command in build-templates.sh: {command}"
        );
        for flag in flags {
            assert!(
                odoo::COMMAND_LINE_FLAGS.contains(&flag),
                "build-templates.sh: Odoo 18 has no flag {flag}"
            );
        }
    }
    // odoo-entrypoint.sh appends the master password to the rendered file.
    let entrypoint = read_repo_file("odoo/odoo-entrypoint.sh");
    let appended = entrypoint
        .split("printf '\\n")
        .nth(1)
        .and_then(|rest| rest.split(" = ").next())
        .expect("odoo-entrypoint.sh appends `name = value`");
    assert_eq!(
        odoo::config_option(appended),
        Some(Kind::Text),
        "{appended}"
    );
}

#[test]
fn odoo_conf_agrees_with_compose_nginx_and_the_env_file() {
    assert_eq!(option("dbfilter"), "^%d$", "one database per Host label");
    assert_eq!(option("list_db"), "False", "the database manager stays off");
    assert_eq!(option("proxy_mode"), "True", "nginx sets X-Forwarded-*");
    assert!(
        option("workers").parse::<u32>().unwrap() > 0,
        "gevent_port (websockets) is served only in multi-process mode"
    );
    let soft: u64 = option("limit_memory_soft").parse().unwrap();
    let hard: u64 = option("limit_memory_hard").parse().unwrap();
    assert!(
        soft < hard,
        "limit_memory_soft must stay below limit_memory_hard"
    );

    let http_port = option("http_port");
    let gevent_port = option("gevent_port");
    let env = compose::env_example();
    assert_eq!(env["ODOO_UPSTREAM"], format!("odoo:{http_port}"));
    let services = read_yaml("compose.yml")["services"].clone();
    assert_eq!(
        services["nginx"]["environment"]["ODOO_WEBSOCKET_PORT"].as_str(),
        Some(gevent_port.as_str()),
        "nginx proxies /websocket to gevent_port"
    );
    let health = serde_yaml::to_string(&services["odoo"]["healthcheck"]["test"]).unwrap();
    assert!(
        health.contains(&format!("127.0.0.1:{http_port}/web/health")),
        "compose's Odoo health check: {health}"
    );
    let debug = read_repo_file("compose.debug.yml");
    assert!(debug.contains(&format!("${{ODOO_HOST_PORT:?}}:{http_port}")));

    let data_dir = option("data_dir");
    assert_eq!(
        env["ODOO_FILESTORE_ROOT"],
        format!("{data_dir}/filestore"),
        "the worker finds Odoo's filestore below data_dir"
    );
    for service in ["odoo", "odoo-templates", "worker"] {
        let volumes = serde_yaml::to_string(&services[service]["volumes"]).unwrap();
        assert!(
            volumes.contains(&format!("odoo-data:{data_dir}")),
            "{service} mounts odoo-data at data_dir ({data_dir})"
        );
    }
    assert!(
        read_repo_file("odoo/build-templates.sh").contains(&format!(
            "filestore_root=\"${{ODOO_DATA_DIR:-{data_dir}}}/filestore\""
        )),
        "build-templates.sh moves filestores below data_dir"
    );
}
