//! What a sealed template's `COMMENT ON DATABASE` records, written by
//! `odoo/seal-template.sql`: `{"odoo": "18.0", "modules": {"base": "18.0.1.3", ...}}`.
//! The comment is read from `pg_shdescription`, so listing templates never
//! connects to one (a sealed template refuses connections).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct TemplateMeta {
    /// The Odoo series, from the `base` module's version.
    #[serde(default)]
    pub odoo: Option<String>,
    /// Installed module -> version (empty when Odoo recorded none).
    pub modules: BTreeMap<String, String>,
}

impl TemplateMeta {
    /// `None` when the comment is not the JSON the seal writes.
    pub(crate) fn parse(comment: &str) -> Option<Self> {
        serde_json::from_str(comment).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_seal_writes() -> Result<(), &'static str> {
        let meta = TemplateMeta::parse(
            r#"{"odoo": "18.0", "modules": {"web": "18.0.1.0", "base": "18.0.1.3"}}"#,
        )
        .ok_or("the seal's JSON was not read")?;
        assert_eq!(meta.odoo.as_deref(), Some("18.0"));
        assert_eq!(
            meta.modules.keys().map(String::as_str).collect::<Vec<_>>(),
            ["base", "web"]
        );
        assert_eq!(
            TemplateMeta::parse(r#"{"odoo": null, "modules": {}}"#).map(|m| m.odoo),
            Some(None)
        );
        Ok(())
    }

    #[test]
    fn anything_else_is_unreadable() {
        for comment in [
            "",
            "odoo-saas tenant 6f1c0a4e-0000-0000-0000-000000000000",
            "{}",
            r#"{"modules": ["base"]}"#,
            "[]",
        ] {
            assert_eq!(TemplateMeta::parse(comment), None, "{comment}");
        }
    }
}
