//! Admin's OpenAPI document tells the truth: schemathesis (every check,
//! `.ci/schemathesis.toml`) drives the real binary from the document it
//! serves, as the owner with a bearer token, with a bounded budget, and
//! finds nothing. `API_BEARER_FAILURES` is raised for the run: schemathesis
//! sends wrong tokens on purpose (`ignored_auth`), which would otherwise
//! turn the rest of the run into 429s.

mod common;

use std::time::Duration;

use anyhow::Context;
use common::TestApp;
use saas_testkit::python::Schemathesis;

#[tokio::test]
async fn schemathesis_finds_no_disagreement_between_document_and_server() -> anyhow::Result<()> {
    let app = TestApp::start_with(&[("API_BEARER_FAILURES", "1000000")]).await?;
    // A server, a plan and a customer, so listings and references have
    // real rows to find.
    app.seed("basic").await?;
    let owner = app.owner().await?;
    let token = app.token(&owner).await?;
    let report = Schemathesis {
        base: &app.base,
        schema_path: "/api/openapi.json",
        bearer: &token,
        max_examples: 25,
        max_time: Duration::from_secs(100),
    }
    .run()
    .await
    .with_context(|| format!("admin log:\n{}", tail(&app.process.log())))?;
    println!("{report}");
    Ok(())
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
