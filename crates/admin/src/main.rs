use std::process::ExitCode;

use saas_core::{Service, db, run};

const USAGE: &str = "usage: admin [serve | migrate]";

fn main() -> ExitCode {
    let command = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "serve".to_owned());
    if !matches!(command.as_str(), "serve" | "migrate") {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let config = match run::config(Service::Admin) {
        Ok(config) => config,
        Err(code) => return code,
    };
    run::block_on(&config, async {
        if command == "migrate" {
            if db::create_database_if_missing(&config).await? {
                tracing::info!(database = %config.database_name(), "created the platform database");
            }
            let pool = db::connect(&config).await?;
            db::migrate(&pool).await?;
            tracing::info!(
                version = db::expected_version(),
                "platform schema is current"
            );
            return Ok(());
        }
        let app = admin::build(&config).await?;
        run::serve_until_signal(&config, app.router()).await
    })
}
