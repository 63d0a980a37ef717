//! An error with every cause behind it, for logs: `Display` of most errors
//! shows only the outermost message ("database error", "cannot list
//! templates"), and the reason an operator needs is in its sources.

use std::error::Error;
use std::fmt;

/// `err` and each of its sources, joined by `": "`. A cause whose text the
/// message already holds (a `thiserror` variant that prints its source too,
/// sqlx's "error returned from database: ...") is not repeated.
pub fn chain(err: &(dyn Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// [`chain`] as a `Display` value, for `tracing` fields without an
/// intermediate `String`: `tracing::warn!(error = %Chain(&err), ...)`.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&chain(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("cannot list templates")]
        Listing(#[source] Inner),
        #[error("database: {0}")]
        Repeats(#[source] Inner),
    }

    #[derive(Debug, thiserror::Error)]
    #[error("role \"odoo\" does not exist")]
    struct Inner(#[source] std::io::Error);

    #[test]
    fn every_cause_is_shown_once() {
        let io = || std::io::Error::other("connection reset");
        let err = Outer::Listing(Inner(io()));
        assert_eq!(
            chain(&err),
            "cannot list templates: role \"odoo\" does not exist: connection reset"
        );
        let err = Outer::Repeats(Inner(io()));
        assert_eq!(
            chain(&err),
            "database: role \"odoo\" does not exist: connection reset"
        );
        assert_eq!(Chain(&err).to_string(), chain(&err));
    }

    #[test]
    fn anyhow_errors_show_their_context_and_cause() {
        let err = anyhow::Error::new(std::io::Error::other("disk full")).context("writing map");
        assert_eq!(chain(err.as_ref()), "writing map: disk full");
    }
}
