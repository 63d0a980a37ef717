//! Grafana dashboards shipped in monitoring/grafana/dashboards.

use crate::repo_root;

/// Every dashboard as (file name, JSON).
pub fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = repo_root().join("monitoring/grafana/dashboards");
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .expect("dashboards directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let json =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap().to_string_lossy().into_owned(), json)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Every PromQL expression of every panel, as (dashboard file, expr).
pub fn dashboard_queries() -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for (file, dashboard) in dashboards() {
        collect_exprs(&dashboard, &mut |expr| {
            queries.push((file.clone(), expr.to_owned()))
        });
    }
    queries
}

fn collect_exprs(value: &serde_json::Value, found: &mut impl FnMut(&str)) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::String(expr)) = map.get("expr") {
                found(expr);
            }
            map.values().for_each(|v| collect_exprs(v, found));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, found)),
        _ => {}
    }
}

/// Every panel of a dashboard, those nested in collapsed rows included.
pub fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        found.push(panel);
        found.extend(panel["panels"].as_array().into_iter().flatten());
    }
    found
}

/// `label_values(metric, label)` of every query variable, as
/// (dashboard file, metric, label).
pub fn label_values_variables() -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for (file, dashboard) in dashboards() {
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if variable["type"] != "query" {
                continue;
            }
            let query = variable["query"]["query"]
                .as_str()
                .or(variable["query"].as_str())
                .unwrap_or_else(|| panic!("{file}: variable {} has no query", variable["name"]));
            let arguments = query
                .strip_prefix("label_values(")
                .and_then(|q| q.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{file}: expected label_values(metric, label): {query}"));
            let (metric, label) = arguments
                .split_once(',')
                .unwrap_or_else(|| panic!("{file}: label_values needs a metric: {query}"));
            found.push((
                file.clone(),
                metric.trim().to_owned(),
                label.trim().to_owned(),
            ));
        }
    }
    found
}
