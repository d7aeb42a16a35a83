//! The `warden` binary: parses arguments, loads the configuration and wires the crates.

mod cli;
mod commands;
mod inject;
mod mcp;
mod memory;
mod metrics;
mod policy;
mod scan;
mod serve;
mod stores;
mod telemetry;
mod verify;

use std::process::ExitCode;

use clap::Parser;
use warden_config::{Config, ProcessEnv};

use cli::{Cli, Command, Common};

fn main() -> ExitCode {
    // One TLS provider for every client in the process (reqwest via rmcp): ring, not aws-lc.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    // `config check` reports on the file it is given, whatever else is configured.
    if let Command::Config(cli::ConfigCommand::Check { file }) = &cli.command {
        return commands::config_check(file);
    }
    // Scanning reads no data directory and prints only its reports.
    if let Command::Scan(args) = cli.command {
        return scan::run(args);
    }
    if let Command::Policy(cmd) = cli.command {
        return policy::run(cmd);
    }
    // Injection rewrites YAML on stdin; it needs no configuration or data.
    if let Command::Inject(args) = cli.command {
        return inject::run(&args);
    }
    let config = match load_config(&cli.common) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warden: configuration is invalid:\n{e}");
            return ExitCode::from(2);
        }
    };
    // Held to the end of `main`: dropping it flushes the spans still buffered.
    let _telemetry = telemetry::init(&config);
    match cli.command {
        Command::Serve(args) => serve::run(config, args),
        Command::Keygen(args) => commands::keygen(&config, args),
        Command::Verify(args) => verify::run(&config, args),
        Command::Ledger(cmd) => commands::ledger(&config, cmd),
        Command::Keys(cmd) => commands::keys(&config, cmd),
        Command::Mcp(args) => mcp::run(config, args),
        Command::Config(_) | Command::Scan(_) | Command::Policy(_) | Command::Inject(_) => {
            unreachable!("handled above")
        }
    }
}

/// Defaults < file < `WARDEN_*` environment < command-line flags.
fn load_config(common: &Common) -> Result<Config, warden_config::ConfigError> {
    let mut config = warden_config::load(common.config.as_deref(), &ProcessEnv)?;
    if let Some(dir) = &common.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}
