use std::process::ExitCode;

use saas_core::config::{Env, WorkerSettings};
use saas_core::{Service, StartupError, run};
use worker::platform::PlatformHandlers;

fn main() -> ExitCode {
    let config = match run::config(Service::Worker) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let settings = match WorkerSettings::from_env(&Env::from_process()) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    run::block_on(&config, async {
        let app = worker::build(&config, settings, |pool| PlatformHandlers {
            pool: pool.clone(),
        })
        .await?;
        let listener = saas_core::service::bind(&config).await?;
        tracing::info!(address = %format!("{}:{}", config.bind_addr, config.port), "listening");
        app.serve(listener, saas_core::service::shutdown_signal())
            .await
            .map_err(|err| StartupError::Internal(err.to_string()))
    })
}
