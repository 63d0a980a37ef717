//! Metric names used by a PromQL expression: every identifier that is not a
//! function, an aggregation, a keyword, a label name or a Grafana variable.

use std::collections::BTreeSet;

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

const GROUPING: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names `expr` selects.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let cleaned = strip_enclosed(&strip_strings(expr));
    let chars: Vec<char> = cleaned.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let mut skip_next_parens = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' {
            i += 1;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len() && (is_ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            if GROUPING.contains(&word.as_str()) {
                skip_next_parens = true;
            } else if !KEYWORDS.contains(&word.as_str()) && next != Some(&'(') {
                names.insert(word);
            }
        } else if c == '(' && skip_next_parens {
            skip_next_parens = false;
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            i += 1;
        } else {
            if !c.is_whitespace() {
                skip_next_parens = false;
            }
            i += 1;
        }
    }
    names
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Removes quoted strings (label values, regexes).
fn strip_strings(expr: &str) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if matches!(c, '"' | '\'' | '`') => quote = Some(c),
            None => out.push(c),
        }
    }
    out
}

/// Removes label matchers `{...}` and ranges `[...]`.
fn strip_enclosed(expr: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in expr.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::metric_names;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).into_iter().collect()
    }

    #[test]
    fn finds_metrics_and_skips_functions_labels_and_variables() {
        assert_eq!(
            names(
                r#"histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{job=~"$job"}[$__rate_interval]))) > 2"#
            ),
            ["http_request_duration_seconds_bucket"]
        );
        assert_eq!(
            names(
                r#"max without (instance) (queue_depth) > 10 and max without (instance) (deriv(queue_depth[15m])) > 0"#
            ),
            ["queue_depth"]
        );
        assert_eq!(
            names("time() - max(last_successful_backup_timestamp_seconds)"),
            ["last_successful_backup_timestamp_seconds"]
        );
        assert_eq!(names(r#"absent(up{job="worker"})"#), ["up"]);
        assert_eq!(names("a / on (job) group_left (kind) b * 1e3"), ["a", "b"]);
    }
}
