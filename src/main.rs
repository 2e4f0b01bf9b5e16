//! The `edgehook` binary: parse the command line, set up logging, run the command, and
//! turn its outcome into an exit code (0 ok, 1 error with a one-line reason, 2 usage).

use std::process::ExitCode;

use clap::Parser;
use edgehook::cli::{Cli, Command};
use edgehook::{config, daemon, logging, send, shutdown};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => return fail(&anyhow::anyhow!("cannot start the async runtime: {err}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => {
            let path = config::resolve_path(args.config.as_deref());
            let config = config::load(&path)?;
            daemon::run(config, shutdown::signal_received(), || ()).await
        }
        Command::Demo => edgehook::demo::tour::run().await,
        Command::CheckConfig(args) => {
            let path = config::resolve_path(args.config.as_deref());
            let config = config::load(&path)?;
            print!("{}", config::summary::summary(&config));
            println!("configuration file {} is valid", path.display());
            Ok(())
        }
        Command::Send(args) => send::run(args).await,
    }
}

fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("edgehook: {err:#}");
    ExitCode::from(1)
}
