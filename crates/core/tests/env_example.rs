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
/// gives URLs with its `PUBLIC_SCHEME` on the port nginx publishes for that
/// scheme (HTTPS by default, plain HTTP when the operator switches it).
#[test]
fn env_example_urls_carry_the_nginx_port() -> anyhow::Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.env.example");
    let pairs = dotenvy::from_path_iter(&path)?.collect::<Result<Vec<_>, _>>()?;
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| anyhow::anyhow!("no {name} in .env.example"))
    };
    let scheme = value("PUBLIC_SCHEME")?;
    assert_eq!(scheme, "https", ".env.example defaults to HTTPS");
    let port = value("NGINX_HTTPS_HOST_PORT")?;
    let env = saas_core::Env::from_pairs(pairs.clone());
    let config = saas_core::Config::from_env(saas_core::Service::Portal, &env)?;
    let urls = config.public_urls();
    assert_eq!(
        urls.tenant("acme"),
        format!("https://acme.saas.localhost:{port}")
    );
    assert_eq!(
        urls.portal(),
        format!("https://portal.saas.localhost:{port}")
    );
    Ok(())
}
