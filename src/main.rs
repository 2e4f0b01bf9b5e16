//! The `edgehook` binary: parse the command line, set up logging, run the command, and
//! turn its outcome into an exit code (0 ok, 1 error with a one-line reason, 2 usage).

use std::process::ExitCode;

use clap::Parser;
use edgehook::admin::client;
use edgehook::cli::{Cli, Command};
use edgehook::{config, daemon, logging, send, shutdown, systemd};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    if matches!(cli.command, Command::Run(_)) {
        // Socket activation; before the runtime starts threads, as it unsets LISTEN_*.
        systemd::take_passed_sockets();
    }
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
            // First: from here on SIGTERM is a clean stop, never the default kill.
            let shutdown = shutdown::signal_received();
            let path = config::resolve_path(args.config.as_deref());
            let config = config::load(&path)?;
            logging::set_format(config.daemon.log_format);
            daemon::run(config, shutdown, || ()).await
        }
        Command::Demo(args) => demo(args.air_gap).await,
        Command::CheckConfig(args) => {
            let path = config::resolve_path(args.config.as_deref());
            let config = config::load(&path)?;
            edgehook::preflight::check(&config)?;
            print!("{}", config::summary::summary(&config));
            for (endpoint, public) in edgehook::sign::public_keys(&config) {
                println!("endpoint {endpoint}: receivers verify v1a signatures with {public}");
            }
            println!("configuration file {} is valid", path.display());
            Ok(())
        }
        Command::Send(args) => send::run(args).await,
        Command::Status(args) => client::status(args).await,
        Command::Endpoints(args) => client::endpoints(args).await,
        Command::Dead(args) => client::dead(args).await,
        Command::Wake(args) => client::wake(args).await,
        Command::Pause(args) => client::pause(args).await,
        Command::Resume(args) => client::resume(args).await,
        Command::Reload(args) => client::reload(args).await,
        Command::Metrics(args) => client::metrics(args).await,
        Command::Purge(args) => edgehook::admin::purge::run(args).await,
        Command::Export(args) => edgehook::transfer::client::export(args).await,
        Command::Import(args) => edgehook::transfer::client::import(args).await,
        Command::Receipt(args) => edgehook::transfer::client::receipt(args).await,
        Command::Top(args) => edgehook::top::run(args).await,
    }
}

#[cfg(feature = "demo")]
async fn demo(air_gap: bool) -> anyhow::Result<()> {
    if air_gap {
        edgehook::demo::airgap::run().await
    } else {
        edgehook::demo::tour::run().await
    }
}

/// The packages leave the demo out (the `demo` feature); the command stays, so the man
/// pages are the same for every build and the answer says where the demo is.
#[cfg(not(feature = "demo"))]
async fn demo(_air_gap: bool) -> anyhow::Result<()> {
    anyhow::bail!(
        "this edgehook was built without the demo (the packages leave it out); \
         run it from a source checkout: cargo run --release -- demo"
    )
}

fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("edgehook: {err:#}");
    ExitCode::from(1)
}
