//! `.env` files as compose (python-dotenv) and the binaries (dotenvy) read
//! them: `KEY=value` lines, `#` comments, optional quotes, `${NAME}`
//! referring to a key defined above.

use std::collections::BTreeMap;

/// One `KEY=value` line, the value as written (quotes removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub raw: String,
}

/// The entries of an env file in order; panics on a line that is neither.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(|(number, line)| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("line {}: not KEY=value: {line}", number + 1));
            let key = key.trim();
            assert!(
                !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "line {}: bad variable name {key:?}",
                number + 1
            );
            Entry {
                key: key.to_owned(),
                raw: unquote(value.trim()).to_owned(),
            }
        })
        .collect()
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// Values with `${NAME}` references resolved against earlier entries.
pub fn resolve(entries: &[Entry]) -> BTreeMap<String, String> {
    let mut resolved = BTreeMap::new();
    for entry in entries {
        let value = crate::template::substitute(&entry.raw, &resolved)
            .unwrap_or_else(|e| panic!("{}: {e}", entry.key));
        resolved.insert(entry.key.clone(), value);
    }
    resolved
}
