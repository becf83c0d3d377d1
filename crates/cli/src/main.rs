//! `kmortem`: the one binary. Each subcommand is a thin shell over a library crate and lives in
//! its own module under `cmd/`.

use clap::{Parser, Subcommand};

mod cmd;

/// Linux kernel post-mortem: find crashes in logs, symbolize them, read vmcores, explain them,
/// match them to known fixes, and watch a fleet.
#[derive(Parser)]
#[command(name = "kmortem", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Oops(cmd::oops::Args),
    Decode(cmd::decode::Args),
    Explain(cmd::explain::Args),
    Core(cmd::core::Args),
    Log(cmd::log::Args),
    Sys(cmd::sys::Args),
    Fixes(cmd::fixes::Args),
    Serve(cmd::serve::Args),
    Agent(cmd::agent::Args),
    Doctor(cmd::doctor::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Oops(a) => cmd::oops::run(a),
        Command::Decode(a) => cmd::decode::run(a),
        Command::Explain(a) => cmd::explain::run(a),
        Command::Core(a) => cmd::core::run(a),
        Command::Log(a) => cmd::log::run(a),
        Command::Sys(a) => cmd::sys::run(a),
        Command::Fixes(a) => cmd::fixes::run(a),
        Command::Serve(a) => cmd::serve::run(a),
        Command::Agent(a) => cmd::agent::run(a),
        Command::Doctor(a) => cmd::doctor::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kmortem: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
