//! monitoring/alertmanager: `amtool check-config`, the receiver is admin's
//! webhook, and the token file the config names is the one the entrypoint
//! writes on the tmpfs compose mounts.

use std::process::Command;

use saas_deploy_checks::{read_repo_file, read_yaml, repo_root, tools};

#[test]
fn amtool_accepts_the_alertmanager_config() {
    let Some(amtool) = tools::require("amtool") else {
        return;
    };
    let config = repo_root().join("monitoring/alertmanager/config.yml");
    assert!(
        config.is_file(),
        "config.yml must be a file: the old stack mounted a directory"
    );
    tools::run_ok(Command::new(amtool).arg("check-config").arg(config));
}

#[test]
fn alerts_go_to_admin_with_the_token_from_env() {
    let config = read_yaml("monitoring/alertmanager/config.yml");
    let default_receiver = config["route"]["receiver"].as_str().unwrap();
    let receiver = config["receivers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|r| r["name"].as_str() == Some(default_receiver))
        .expect("the default receiver is defined");
    let webhook = &receiver["webhook_configs"][0];
    assert_eq!(
        webhook["url"].as_str(),
        Some("http://admin:5000/api/v1/alerts")
    );
    let authorization = &webhook["http_config"]["authorization"];
    assert_eq!(authorization["type"].as_str(), Some("Bearer"));
    let token_file = authorization["credentials_file"].as_str().unwrap();

    let entrypoint = read_repo_file("monitoring/alertmanager/entrypoint.sh");
    assert!(
        entrypoint.contains(&format!("\"$ALERT_WEBHOOK_TOKEN\" >{token_file}")),
        "entrypoint.sh must write {token_file}"
    );
    let compose = read_yaml("compose.yml");
    let alertmanager = &compose["services"]["alertmanager"];
    let tmpfs = alertmanager["tmpfs"][0].as_str().unwrap();
    let token_dir = std::path::Path::new(token_file)
        .parent()
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        tmpfs.starts_with(token_dir),
        "compose must mount a tmpfs at {token_dir}, got {tmpfs}"
    );
    assert_eq!(
        alertmanager["environment"]["ALERT_WEBHOOK_TOKEN"].as_str(),
        Some("${ALERT_WEBHOOK_TOKEN:?}")
    );
    assert_eq!(
        compose["services"]["admin"]["environment"]["ALERT_WEBHOOK_TOKEN"].as_str(),
        Some("${ALERT_WEBHOOK_TOKEN:?}"),
        "admin and alertmanager must share the one token from .env"
    );
}
