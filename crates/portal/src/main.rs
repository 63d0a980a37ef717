use std::process::ExitCode;

use saas_core::{Service, run};

fn main() -> ExitCode {
    let config = match run::config(Service::Portal) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let settings = match portal::settings_from_process() {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    run::block_on(&config, async {
        let app = portal::build_with(&config, settings).await?;
        run::serve_until_signal(&config, app.router(), app.metrics_router()).await
    })
}
