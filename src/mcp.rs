//! `warden mcp` (stdio) and the wiring of `/mcp` into `serve`.

use std::process::ExitCode;
use std::sync::Arc;

use warden_config::{Config, Durability, FailMode, McpEscalation};
use warden_governance::{Decisions, Principal, Scope, Store};
use warden_guardians::{GuardianConfig, Guardians};
use warden_ledger::Ledger;
use warden_mcp::proxy::{
    EscalationMode, Federation, ProxyOptions, UpstreamSpec, UpstreamTransport,
};
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
    let pg = tokio::task::spawn_blocking({
        let config = config.clone();
        move || crate::stores::connect(&config)
    })
    .await??;
    let ledger = tokio::task::spawn_blocking({
        let (config, pg) = (config.clone(), pg.clone());
        move || crate::stores::open_ledger(&config, pg)
    })
    .await??;
    let store = tokio::task::spawn_blocking({
        let config = config.clone();
        move || -> anyhow::Result<Store> {
            let store = crate::stores::open_store(&config, pg.as_ref())?;
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
            agent: None,
        },
    };
    let ledger = Arc::new(ledger);
    let store = Arc::new(store);
    let (policies, _watcher) = crate::serve::load_policies(&config)?;
    let decisions = Arc::new(Decisions::new(
        store.clone(),
        ledger.clone(),
        policies.clone(),
    ));
    // Registrations made here are delivered by `warden serve` on this data directory.
    let (secrets, targets) = crate::serve::webhook_settings(&config)?;
    let webhooks = Arc::new(warden_governance::Webhooks::new(
        store.clone(),
        decisions.events().clone(),
        secrets,
        targets,
    ));
    let gloxi = if config.gloxi.model.is_some() {
        // Governed LLM calls need the data plane, in process (no listener is opened).
        let (_, plane) =
            crate::serve::data_plane(&config, &store, &ledger, &decisions, &webhooks, &policies)
                .await?;
        crate::serve::gloxi(&config, &store, &plane)?
    } else {
        // Without an LLM nothing of the data plane is needed; the guardians compile at the
        // first question, so that the server answers `initialize` at once.
        let guardians: GuardianConfig = serde_json::from_value(config.guardians.clone())
            .map_err(|e| anyhow::anyhow!("guardians: {e}"))?;
        Arc::new(warden_governance::gloxi::Gloxi::with_lazy_guardians(
            store.clone(),
            guardians,
        ))
    };
    let core = Arc::new(warden_mcp::Core {
        decisions,
        webhooks,
        ledger: ledger.clone(),
        federation: federation(&config, &ledger, &policies)?,
        policies,
        gloxi,
    });
    tracing::info!(tenant = %principal.tenant, key = %principal.key_id, "MCP server on stdio");
    let served = warden_mcp::serve_stdio(core, principal).await;
    ledger.shutdown().await;
    served?;
    Ok(())
}

/// The `/mcp` route of the data plane.
pub async fn http_router(
    config: &Config,
    keys: &Arc<warden_governance::KeyCache>,
    ledger: &Arc<Ledger>,
    decisions: &Arc<Decisions>,
    webhooks: &Arc<warden_governance::Webhooks>,
    policies: &Arc<LivePolicySet>,
    gloxi: &Arc<warden_governance::gloxi::Gloxi>,
) -> anyhow::Result<axum::Router> {
    let core = Arc::new(warden_mcp::Core {
        decisions: decisions.clone(),
        webhooks: webhooks.clone(),
        ledger: ledger.clone(),
        policies: policies.clone(),
        federation: federation(config, ledger, policies)?,
        gloxi: gloxi.clone(),
    });
    let options = warden_mcp::HttpOptions {
        allowed_hosts: config.mcp.allowed_hosts.clone(),
        ..Default::default()
    };
    Ok(warden_mcp::http::router(core, keys.clone(), options))
}

/// The MCP proxy over `mcp.upstreams`, if any are configured.
fn federation(
    config: &Config,
    ledger: &Arc<Ledger>,
    policies: &Arc<LivePolicySet>,
) -> anyhow::Result<Option<Arc<Federation>>> {
    if config.mcp.upstreams.is_empty() {
        return Ok(None);
    }
    let guardians: GuardianConfig = serde_json::from_value(config.guardians.clone())
        .map_err(|e| anyhow::anyhow!("guardians: {e}"))?;
    let guardians = Arc::new(Guardians::new(guardians)?);
    let mut specs = Vec::new();
    for u in &config.mcp.upstreams {
        let expand = |pairs: &[(String, String)]| -> anyhow::Result<Vec<(String, String)>> {
            pairs
                .iter()
                .map(|(k, v)| Ok((k.clone(), expand_env(v)?)))
                .collect()
        };
        let transport = match (&u.command, &u.url) {
            (Some(command), _) => UpstreamTransport::Stdio {
                command: command.clone(),
                args: u.args.clone(),
                env: expand(&u.env)?,
            },
            (None, Some(url)) => UpstreamTransport::Http {
                url: url.clone(),
                headers: expand(&u.headers)?,
            },
            (None, None) => anyhow::bail!("mcp.upstreams {}: no command or url", u.name),
        };
        specs.push(UpstreamSpec {
            name: u.name.clone(),
            transport,
        });
    }
    let options = ProxyOptions {
        escalation: match config.mcp.escalation {
            McpEscalation::Hold => EscalationMode::Hold(config.mcp.escalation_timeout),
            McpEscalation::Fail => EscalationMode::Fail,
        },
        call_timeout: config.mcp.call_timeout,
        durable: config.ledger.durability == Durability::Sync,
        fail_open: config.mcp.fail_mode.unwrap_or(config.proxy.fail_mode) == FailMode::Open,
    };
    tracing::info!(
        upstreams = specs.len(),
        "MCP proxy: federating upstream MCP servers"
    );
    Ok(Some(Federation::start(
        specs,
        guardians,
        policies.clone(),
        ledger.clone(),
        options,
    )?))
}

/// Replaces each `${VAR}` with the variable's value, so secrets stay out of the file.
fn expand_env(v: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut rest = v;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start + 2..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        out.push_str(&rest[..start]);
        out.push_str(
            &std::env::var(name)
                .map_err(|_| anyhow::anyhow!("mcp.upstreams: ${{{name}}} is not set"))?,
        );
        rest = &rest[start + 3 + len..];
    }
    out.push_str(rest);
    Ok(out)
}
