//! `warden mcp` (stdio) and the wiring of `/mcp` into `serve`.

use std::process::ExitCode;
use std::sync::Arc;

use warden_config::Config;
use warden_governance::{Decisions, Principal, Scope, Store};
use warden_ledger::Ledger;
use warden_policy::LivePolicySet;

use crate::cli::McpArgs;

pub fn run(config: Config, args: McpArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warden: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.connect {
        Some(url) => match args.key {
            Some(key) => rt
                .block_on(warden_mcp::bridge(url, key))
                .map_err(anyhow::Error::from),
            None => Err(anyhow::anyhow!(
                "--connect needs --key (or WARDEN_API_KEY): a key with the mcp scope"
            )),
        },
        None => rt.block_on(stdio(config, args.key)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("warden: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Serves the data directory on stdio. Nothing but MCP may reach stdout.
async fn stdio(config: Config, key: Option<String>) -> anyhow::Result<()> {
    let ledger = tokio::task::spawn_blocking({
        let opts = crate::serve::ledger_options(&config);
        move || Ledger::open(opts)
    })
    .await??;
    let store = tokio::task::spawn_blocking({
        let dir = config.data_dir.clone();
        move || -> anyhow::Result<Store> {
            let store = Store::open(&dir)?;
            store.ensure_tenant("default")?;
            Ok(store)
        }
    })
    .await??;
    let principal = match key {
        Some(key) => {
            let p = store.authenticate(&key)?;
            if !p.allows(&Scope::Mcp) {
                anyhow::bail!("API key {} lacks the mcp scope", p.key_id);
            }
            p
        }
        // Whoever can read the data directory owns it already.
        None => Principal {
            tenant: "default".into(),
            key_id: "local-stdio".into(),
            scopes: vec![Scope::Admin, Scope::Mcp],
        },
    };
    let ledger = Arc::new(ledger);
    let store = Arc::new(store);
    let (policies, _watcher) = crate::serve::load_policies(&config)?;
    let decisions = Arc::new(Decisions::new(store, ledger.clone(), policies.clone()));
    let core = Arc::new(warden_mcp::Core {
        decisions,
        ledger: ledger.clone(),
        policies,
        federation: None,
    });
    tracing::info!(tenant = %principal.tenant, key = %principal.key_id, "MCP server on stdio");
    let served = warden_mcp::serve_stdio(core, principal).await;
    ledger.shutdown().await;
    served?;
    Ok(())
}

/// The `/mcp` route of the data plane.
pub async fn http_router(
    _config: &Config,
    store: &Arc<Store>,
    ledger: &Arc<Ledger>,
    decisions: &Arc<Decisions>,
    policies: &Arc<LivePolicySet>,
) -> anyhow::Result<axum::Router> {
    let core = Arc::new(warden_mcp::Core {
        decisions: decisions.clone(),
        ledger: ledger.clone(),
        policies: policies.clone(),
        federation: None,
    });
    Ok(warden_mcp::http::router(
        core,
        store.clone(),
        warden_mcp::HttpOptions::default(),
    ))
}
