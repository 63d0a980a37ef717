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
