//! The portal's OpenAPI document tells the truth: schemathesis (every
//! check, `.ci/schemathesis.toml`) drives the real binary from the document
//! it serves, signed in with a bearer token, with a bounded budget, and
//! finds nothing. `API_BEARER_FAILURES` is raised for the run: schemathesis
//! sends wrong tokens on purpose (`ignored_auth`), which would otherwise
//! turn the rest of the run into 429s.

mod common;

use std::time::Duration;

use anyhow::Context;
use common::{Options, TestApp};
use saas_core::auth::tokens::{self, Owner};
use saas_testkit::python::Schemathesis;

#[tokio::test]
async fn schemathesis_finds_no_disagreement_between_document_and_server() -> anyhow::Result<()> {
    let app = TestApp::start_with(Options {
        extra_env: vec![("API_BEARER_FAILURES".to_owned(), "1000000".to_owned())],
        ..Options::default()
    })
    .await?;
    // A verified customer with an instance, a backup and an operation, so
    // the generated ids have real neighbours.
    let customer = app.customer("schema@example.com").await?;
    drop(customer);
    let customer_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM customers WHERE email = 'schema@example.com'")
            .fetch_one(&app.pool)
            .await?;
    let mut conn = app.pool.acquire().await?;
    let (_, secret) =
        tokens::create(&mut conn, Owner::Customer, customer_id, "schemathesis").await?;
    let report = Schemathesis {
        base: &app.base,
        schema_path: "/api/openapi.json",
        bearer: &secret,
        max_examples: 25,
        max_time: Duration::from_secs(90),
    }
    .run()
    .await
    .with_context(|| format!("portal log:\n{}", tail(&app.process.log())))?;
    println!("{report}");
    Ok(())
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
