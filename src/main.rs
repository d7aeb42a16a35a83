//! The `warden` binary: parses arguments, loads the configuration and wires the crates.

mod cli;
mod commands;
mod inject;
mod mcp;
mod policy;
mod scan;
mod serve;
mod verify;

use std::process::ExitCode;

use clap::Parser;
use warden_config::{Config, LogFormat, ProcessEnv};

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
    init_logging(&config);
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

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    // The configuration validated the directive; fall back to `info` rather than go silent.
    let filter = EnvFilter::try_new(&config.log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
