//! Every variable the code reads is documented in `.env.example`.

use std::path::Path;

#[test]
fn env_example_documents_every_variable_the_code_reads() -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.env.example");
    let text = std::fs::read_to_string(&path)?;
    let defined: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once('=').map(|(name, _)| name.trim()))
        .collect();
    let missing: Vec<&&str> = saas_core::config::KNOWN_VARS
        .iter()
        .filter(|var| !defined.contains(var))
        .collect();
    assert!(missing.is_empty(), ".env.example lacks {missing:?}");
    Ok(())
}

/// `.env.example` as the binaries read it (dotenvy, `${NAME}` substituted)
/// gives URLs on nginx's published port.
#[test]
fn env_example_urls_carry_the_nginx_port() -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.env.example");
    let pairs = dotenvy::from_path_iter(&path)?.collect::<Result<Vec<_>, _>>()?;
    let port = pairs
        .iter()
        .find(|(k, _)| k == "NGINX_HTTP_HOST_PORT")
        .map(|(_, v)| v.clone())
        .ok_or_else(|| anyhow::anyhow!("no NGINX_HTTP_HOST_PORT"))?;
    let env = saas_core::Env::from_pairs(pairs);
    let config = saas_core::Config::from_env(saas_core::Service::Portal, &env)?;
    let urls = config.public_urls();
    assert_eq!(
        urls.tenant("acme"),
        format!("http://acme.saas.localhost:{port}")
    );
    assert_eq!(
        urls.portal(),
        format!("http://portal.saas.localhost:{port}")
    );
    Ok(())
}
