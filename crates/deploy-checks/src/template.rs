//! `${NAME}` references: listing them (compose, nginx templates) and
//! substituting them the way `envsubst` in the nginx image does.

use std::collections::BTreeMap;

/// Names referenced as `${NAME}`, `${NAME:?}`, `${NAME-default}`, ...;
/// `$${...}` (compose's escaped dollar) is skipped.
pub fn referenced(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut names = Vec::new();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'$' && bytes[i + 1] == b'$' {
            i += 2;
            continue;
        }
        if bytes[i] == b'$' && bytes[i + 1] == b'{' {
            let start = i + 2;
            let end = start
                + bytes[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
            names.push(text[start..end].to_owned());
            i = end;
            continue;
        }
        i += 1;
    }
    names
}

/// Replaces `${NAME}` with `vars[NAME]`; a reference to an upper-case name
/// that `vars` lacks is an error (envsubst would leave it in the output,
/// where nginx then fails or, worse, reads it as its own variable).
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {text:?}"))?;
        let name = &after[..close];
        match vars.get(name) {
            Some(value) => out.push_str(value),
            None => return Err(format!("${{{name}}} is not defined")),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
