use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use saas_core::{Env, Service, db, run};

const USAGE: &str =
    "usage: admin [serve | migrate | create-operator --email EMAIL --role owner|operator|viewer]
  create-operator reads the password from standard input (a prompt on a terminal)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().cloned().unwrap_or_else(|| "serve".to_owned());
    if !matches!(command.as_str(), "serve" | "migrate" | "create-operator") {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let config = match run::config(Service::Admin) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let settings = match admin::AdminSettings::from_env(&Env::from_process(), config.app_env) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    if command == "create-operator" {
        return create_operator(&config, &args[1..]);
    }
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
        let app = admin::build(&config, settings).await?;
        run::serve_until_signal(&config, app.router(), app.metrics_router()).await
    })
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The password from a prompt without echo on a terminal, else stdin's first line.
fn read_password() -> std::io::Result<String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if terminal {
        eprint!("Password for the new operator: ");
        std::io::stderr().flush()?;
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if terminal {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn create_operator(config: &saas_core::Config, args: &[String]) -> ExitCode {
    let (Some(email), Some(role)) = (flag(args, "--email"), flag(args, "--role")) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let password = match read_password() {
        Ok(password) => password,
        Err(err) => {
            eprintln!("error: cannot read the password: {err}");
            return ExitCode::from(2);
        }
    };
    let mut status = ExitCode::SUCCESS;
    let code = run::block_on(config, async {
        let pool = db::connect(config).await?;
        db::migrate(&pool).await?;
        let new = admin::actions::operators::NewOperator {
            email,
            role,
            password,
            display_name: String::new(),
        };
        match admin::actions::operators::insert(&pool, None, new).await {
            Ok(row) => println!("created {} operator {} ({})", row.role, row.email, row.id),
            Err(err) => {
                let field = err.field().map(|f| format!("{f}: ")).unwrap_or_default();
                let message = match &err {
                    admin::error::Error::Invalid { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                eprintln!("error: {field}{message}");
                status = ExitCode::from(2);
            }
        }
        Ok(())
    });
    if code != ExitCode::SUCCESS {
        return code;
    }
    status
}
