//! Metric names used by a PromQL expression: every identifier that is not a
//! function, an aggregation, a keyword, a label name or a Grafana variable;
//! and the label names its selectors match on.

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

/// Every rule of monitoring/prometheus/alerts.yml as (alert or record
/// name, expr).
pub fn alert_rules() -> Vec<(String, String)> {
    crate::read_yaml("monitoring/prometheus/alerts.yml")["groups"]
        .as_sequence()
        .expect("alerts.yml has groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .map(|r| {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap();
            (name.to_owned(), r["expr"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// Every `metric{matchers}` selector of `expr`, as the metric name and the
/// label names its matchers test (`{job=~"$job", status="5.."}` gives
/// `job`, `status`).
pub fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let chars: Vec<char> = expr.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '"' || chars[i] == '\'' || chars[i] == '`' {
            i = skip_string(&chars, i);
        } else if is_ident_start(chars[i]) && (i == 0 || !is_ident(chars[i - 1])) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            if chars.get(i) == Some(&'{') {
                let body_start = i + 1;
                while i < chars.len() && chars[i] != '}' {
                    i = if chars[i] == '"' {
                        skip_string(&chars, i)
                    } else {
                        i + 1
                    };
                }
                let name: String = chars[start..body_start - 1].iter().collect();
                let body: String = chars[body_start..i.min(chars.len())].iter().collect();
                found.push((name, label_names(&body)));
            }
        } else {
            i += 1;
        }
    }
    found
}

/// The label names of a matcher list or a label set (`a="x", b=~"y"`).
pub fn label_names(body: &str) -> Vec<String> {
    let chars: Vec<char> = body.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '"' {
            i = skip_string(&chars, i);
        } else if is_ident_start(chars[i]) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            names.push(chars[start..i].iter().collect());
        } else {
            i += 1;
        }
    }
    names
}

/// The index after the string literal starting at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
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

    #[test]
    fn finds_selectors_and_the_labels_they_match() {
        assert_eq!(
            super::selectors(
                r#"sum by (job) (rate(http_requests_total{job=~"$job", status=~"5.."}[5m])) / sum(up{job="a,b}"})"#
            ),
            [
                (
                    "http_requests_total".to_owned(),
                    vec!["job".to_owned(), "status".to_owned()]
                ),
                ("up".to_owned(), vec!["job".to_owned()]),
            ]
        );
        assert_eq!(
            super::label_names(r#"method="GET",route="/x,y",le="+Inf""#),
            ["method", "route", "le"]
        );
    }
}
