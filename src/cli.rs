//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "warden", version, about = "A governance sidecar for AI agents")]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command that touches data shares.
#[derive(Args, Debug, Clone, Default)]
pub struct Common {
    /// The YAML configuration file (default: $WARDEN_CONFIG, else none: built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where Warden keeps its data (overrides `data_dir` of the configuration).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run Warden: the data plane and API on --listen, health and readiness on --admin-listen.
    Serve(ServeArgs),
    /// Create the ledger signing key pair (or rotate it) and print the public key and key id.
    Keygen(KeygenArgs),
    /// Verify a ledger export, a receipt or a consistency claim offline, with public keys only.
    /// Exit code 0: valid; 1: invalid; 2: unusable input.
    Verify(VerifyArgs),
    /// Work with the ledger of the data directory.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the guardians (PII, secrets, prompt injection, content safety) over text on stdin,
    /// or over JSON lines of {"text", "channel"}; print one JSON report per input.
    Scan(ScanArgs),
    /// API keys of the data directory's store: create (shown once), list, revoke.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Policy packs: check, table-test and sign.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Add the Warden sidecar to Kubernetes workloads (Pod, Deployment, StatefulSet, DaemonSet,
    /// ReplicaSet, Job, CronJob, or a List of them) read as YAML on stdin, one or more
    /// documents; write them to stdout. Other documents pass through. Running it twice changes
    /// nothing more. Comments are not kept.
    Inject(InjectArgs),
    /// Serve the governance tools over MCP on stdin/stdout (for desktop clients): from the data
    /// directory, or with --connect by relaying to a running Warden's /mcp.
    Mcp(McpArgs),
}

#[derive(Args, Debug)]
pub struct McpArgs {
    /// The caller's API key (scope `mcp`). Without it, a local data directory is served as an
    /// admin of tenant `default`; with --connect it is required.
    #[arg(long, env = "WARDEN_API_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Relay to this MCP endpoint of a running Warden (e.g. http://127.0.0.1:8080/mcp) instead
    /// of opening the data directory.
    #[arg(long, value_name = "URL")]
    pub connect: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key for a tenant (created if new) and print it; it is not shown again.
    Create {
        #[arg(long)]
        tenant: String,
        /// Comma-separated: read, write, admin, auditor, mcp, client:<token>.
        #[arg(long)]
        scopes: String,
        /// A note to recognise the key by in listings.
        #[arg(long)]
        label: Option<String>,
        /// Bind the key to an agent: every call made with it through the proxy is that
        /// agent's, whatever the request claims.
        #[arg(long)]
        agent: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's keys (never their secrets).
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke one of a tenant's keys.
    Revoke {
        #[arg(long)]
        tenant: String,
        key_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Load packs (files or directories; `default` for the built-in pack), report every problem
    /// with its line and column, and print each pack's id, version and content hash.
    Check {
        #[arg(required = true)]
        packs: Vec<PathBuf>,
    },
    /// Run table tests (`CASES.yaml`: inputs and expected verdicts) against a pack, a directory
    /// of packs, or `default`. Exit code 0: all pass; 1: a case failed; 2: unusable input.
    Test {
        pack: PathBuf,
        cases: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sign a pack with an Ed25519 key (PEM, as `warden keygen --out` writes): appends a line to
    /// PACK.sig.
    Sign {
        pack: PathBuf,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Read JSON lines `{"text": ..., "channel": ...}` from this file (- for stdin) instead of
    /// taking all of stdin as one text.
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// The channel of the text: user_input, tool_output (untrusted), response or tool_args.
    #[arg(long, default_value = "user_input")]
    pub channel: String,
    /// Guardian settings (thresholds and actions) as a JSON file; built-in defaults otherwise.
    #[arg(long, value_name = "FILE")]
    pub guardians: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct InjectArgs {
    /// The Warden container image.
    #[arg(long, default_value = concat!("warden:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// The ConfigMap holding `warden.yaml`.
    #[arg(long, default_value = "warden-config", value_name = "NAME")]
    pub config_map: String,
    /// The ConfigMap holding the policy packs (optional in the pod: none means the built-in
    /// pack), reloaded when it changes.
    #[arg(long, default_value = "warden-policies", value_name = "NAME")]
    pub policies: String,
    /// The Secret holding the ledger signing key (`ledger.key`) and the upstream keys.
    #[arg(long, default_value = "warden-secrets", value_name = "NAME")]
    pub secret: String,
    /// A Secret holding the agent's Warden API key under `api-key`: the agent containers'
    /// OPENAI_API_KEY is then read from it.
    #[arg(long, value_name = "NAME")]
    pub api_key_secret: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Data plane and API address; port 0 picks a free port (the chosen address is logged).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Admin address (/health, /ready); port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
}

#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Write the private key here (its public key beside it, as .pub) instead of the
    /// configured signing key path.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace an existing key; its public key is kept in retired/ so old checkpoints verify.
    #[arg(long)]
    pub rotate: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerifyKind {
    Export,
    Receipt,
    Consistency,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The file to verify, or - for standard input.
    pub file: PathBuf,
    /// A trusted public key (PEM); repeat for rotated keys. Default: every key of the data
    /// directory's key folder.
    #[arg(long = "public-key", value_name = "FILE")]
    pub public_keys: Vec<PathBuf>,
    /// What the file is; detected from its content when omitted.
    #[arg(long = "as", value_enum)]
    pub kind: Option<VerifyKind>,
    /// Print the verdict as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum LedgerCommand {
    /// Write every record and checkpoint as JSON lines (to stdout or --out).
    Export {
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Append JSON payloads read from stdin, one per line; print each receipt as a JSON line
    /// once it is durable.
    Append {
        /// The records' kind.
        #[arg(long, default_value = "note")]
        kind: String,
        /// The records' tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Appends in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Print a receipt for the record at INDEX, proved against the latest checkpoint.
    Receipt { index: u64 },
    /// Print a consistency claim between the checkpoint at --from and the one at --to
    /// (default: the latest).
    Consistency {
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Report every problem of a configuration file (with its line) and exit non-zero if any.
    Check { file: PathBuf },
}
