//! Identifiers that end up inside SQL or paths: checked once, then quoted.

use crate::error::{OdooError, Result};

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
pub const MAX_IDENT_LEN: usize = 63;

/// Checks a database name: `^[a-z0-9_][a-z0-9_-]{0,62}$`. Tenant databases are
/// named by their subdomain (Odoo's `dbfilter = ^%d$` picks the database named by
/// the first label of the host), templates and side databases use `_`. Such a name
/// is safe inside double quotes and as a directory name.
pub fn check_db_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if first_ok && rest_ok && name.len() <= MAX_IDENT_LEN {
        Ok(())
    } else {
        Err(OdooError::invalid(
            "database name",
            format!("{name:?} must match ^[a-z0-9_][a-z0-9_-]{{0,62}}$"),
        ))
    }
}

/// Checks a role name: ASCII letters, digits and `_`, not starting with a digit.
pub fn check_role(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if first_ok && rest_ok && name.len() <= MAX_IDENT_LEN {
        Ok(())
    } else {
        Err(OdooError::invalid(
            "role name",
            format!("{name:?} must be letters, digits and _ (max 63)"),
        ))
    }
}

/// `"name"` for an identifier already checked by one of the functions above.
pub(crate) fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_names() {
        assert!(check_db_name("acme").is_ok());
        assert!(check_db_name("_x_1").is_ok());
        assert!(check_db_name("my-shop").is_ok());
        assert!(check_db_name("1shop").is_ok());
        assert!(check_db_name(&"a".repeat(63)).is_ok());
        for bad in ["", "-abc", "Acme", "a\"b", "a b", "../x", "a/b", "a.b"] {
            assert!(check_db_name(bad).is_err(), "{bad}");
        }
        assert!(check_db_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn roles() {
        assert!(check_role("odoo").is_ok());
        assert!(check_role("Odoo_18").is_ok());
        assert!(check_role("9x").is_err());
        assert!(check_role("a;b").is_err());
        assert_eq!(quoted("odoo"), "\"odoo\"");
    }
}
