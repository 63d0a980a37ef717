use std::process::ExitCode;

use saas_core::{Service, run};

fn main() -> ExitCode {
    let config = match run::config(Service::Worker) {
        Ok(config) => config,
        Err(code) => return code,
    };
    run::block_on(&config, async {
        let app = worker::build(&config).await?;
        run::serve_until_signal(&config, app.router()).await
    })
}
