//! `switchyard` binary: CLI parsing and wiring only.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "switchyard", version, about = "An OpenAI-compatible LLM gateway on Pingora")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, short, default_value = "config/gateway.yaml")]
        config: PathBuf,
    },
    /// Validate a config file and exit (non-zero with a line-numbered message on error).
    Check {
        #[arg(long, short, default_value = "config/gateway.yaml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,pingora_core=warn,pingora_proxy=warn"),
    )
    .format_timestamp_millis()
    .init();
    match Cli::parse().command {
        Command::Check { config } => match switchyard::config::Config::load(&config)
            .and_then(|c| switchyard::config::live::Snapshot::build(c, 1, None))
            .map(|s| s.config)
        {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "{}: ok ({} provider(s), {} model(s))",
                    config.display(),
                    cfg.providers.len(),
                    cfg.models.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::FAILURE
            }
        },
        Command::Serve { config } => match switchyard::server::serve(config.clone()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::FAILURE
            }
        },
    }
}
