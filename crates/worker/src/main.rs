use std::process::ExitCode;

use saas_core::config::{DataPlaneSettings, Env, WorkerSettings};
use saas_core::{Service, StartupError, run};

fn main() -> ExitCode {
    let config = match run::config(Service::Worker) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let env = Env::from_process();
    let settings =
        WorkerSettings::from_env(&env).and_then(|w| Ok((w, DataPlaneSettings::from_env(&env)?)));
    let (settings, data_plane) = match settings {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    run::block_on(&config, async {
        let app = worker::build(&config, settings, |pool| {
            worker::start_platform(&config, data_plane, pool)
        })
        .await?;
        let listener = saas_core::service::bind(&config).await?;
        tracing::info!(address = %format!("{}:{}", config.bind_addr, config.port), "listening");
        app.serve(listener, saas_core::service::shutdown_signal())
            .await
            .map_err(|err| StartupError::Stopped(err.to_string()))
    })
}
