//! `warden serve`: open the store and the ledger, bind the listeners, stop cleanly on a signal.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use warden_config::Config;
use warden_ledger::{keys, Ledger};

use crate::cli::ServeArgs;

pub fn run(mut config: Config, args: ServeArgs) -> ExitCode {
    if let Some(a) = args.listen {
        config.server.listen = a;
    }
    if let Some(a) = args.admin_listen {
        config.server.admin_listen = a;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("warden: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What the admin handlers share.
struct AppState {
    ledger: Arc<Ledger>,
    store: Arc<warden_governance::Store>,
    metrics: crate::metrics::Sources,
    webhooks: Arc<warden_governance::Webhooks>,
    upstreams: Vec<String>,
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // First, so that everything after reports to it.
    let metrics_handle = crate::metrics::install()?;
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
    if ledger.key_created() {
        tracing::info!(
            key_id = %keys::key_id(ledger.verifying_key()),
            path = %config.ledger.signing_key_path(&config.data_dir).display(),
            "generated a new ledger signing key"
        );
    }
    let store = tokio::task::spawn_blocking({
        let config = config.clone();
        move || -> anyhow::Result<_> {
            let store = crate::stores::open_store(&config, pg.as_ref())?;
            let bootstrap = store.bootstrap()?;
            Ok((store, bootstrap))
        }
    })
    .await??;
    if let Some(k) = &store.1 {
        // Shown once, on stdout and never in the log: it is a secret.
        println!(
            "Warden created an admin API key for tenant \"{}\". It is shown only this once:\n  {}",
            k.tenant, k.key
        );
        tracing::info!(key_id = %k.id, tenant = %k.tenant, "bootstrap admin key created (printed on stdout)");
    }
    let ledger = Arc::new(ledger);
    let store = Arc::new(store.0);
    let (policies, _watcher) = load_policies(&config)?;
    let decisions = Arc::new(warden_governance::Decisions::new(
        store.clone(),
        ledger.clone(),
        policies.clone(),
    ));
    let (secrets, targets) = webhook_settings(&config)?;
    let webhooks = Arc::new(warden_governance::Webhooks::new(
        store.clone(),
        decisions.events().clone(),
        secrets.clone(),
        targets.clone(),
    ));
    let dispatcher = warden_governance::Dispatcher::new(
        store.clone(),
        decisions.events().clone(),
        secrets,
        targets,
        warden_governance::DispatcherOptions {
            timeout: config.events.delivery_timeout,
            max_attempts: u32::try_from(config.events.max_attempts).unwrap_or(u32::MAX),
            retry_base: config.events.retry_base,
            retry_max: config.events.retry_max,
            endpoint_concurrency: config.events.endpoint_concurrency,
        },
    )?;
    let events = decisions.events().clone();
    let (api_state, plane) =
        data_plane(&config, &store, &ledger, &decisions, &webhooks, &policies).await?;
    // Gloxi's index (3.4 MiB of passages and postings) is built at the first question, off the
    // async workers: a sidecar that is never asked one does not hold it, and the first asker
    // waits a fraction of a second once.
    let gloxi = gloxi(&config, &store, &plane)?;
    let mcp = crate::mcp::http_router(
        &config,
        &api_state.keys,
        &ledger,
        &decisions,
        &webhooks,
        &policies,
        &gloxi,
    )
    .await?;
    // `/mcp` serves the same operations as the REST API: one budget per key for both.
    let mcp = api_state.limits.guard(mcp);
    let chat = warden_proxy::chat::router(Arc::new(warden_proxy::chat::ChatState {
        api: api_state.clone(),
        gloxi,
    }));
    if config.upstreams.is_empty() {
        tracing::info!("no upstreams configured: the OpenAI routes answer 503 until one is added");
    } else {
        tracing::info!(upstreams = ?plane.upstream_names(), "OpenAI-compatible proxy ready");
    }
    let state = Arc::new(AppState {
        metrics: crate::metrics::Sources {
            handle: metrics_handle,
            ledger: ledger.clone(),
            decisions: api_state.decisions.clone(),
            webhooks: api_state.webhooks.clone(),
        },
        webhooks: api_state.webhooks.clone(),
        upstreams: plane.upstream_names(),
        ledger,
        store,
    });

    let api = TcpListener::bind(config.server.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.listen))?;
    let admin = TcpListener::bind(config.server.admin_listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.admin_listen))?;
    let api_addr: SocketAddr = api.local_addr()?;
    let admin_addr: SocketAddr = admin.local_addr()?;
    tracing::info!(addr = %api_addr, "data plane listening");
    tracing::info!(addr = %admin_addr, "admin listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let dispatcher_task = dispatcher.spawn(stop_rx.clone());
    let checkpoint_task = events.spawn_checkpoint_events(
        state.ledger.clone(),
        config.events.checkpoint_interval,
        stop_rx.clone(),
    );
    // `into_make_service` turns the routes into services once: given the `Router` itself,
    // `axum::serve` does it again for every accepted connection, which then holds its own copy
    // of every route's service and of the route tables (measured: 51 KiB of heap per open
    // keep-alive connection, 17.5 KiB with this).
    let api_task = tokio::spawn(
        axum::serve(
            api,
            warden_proxy::router(api_state)
                .merge(chat)
                .merge(warden_proxy::openai::router(plane))
                .merge(mcp)
                .layer(axum::middleware::from_fn(warden_proxy::metrics::track))
                .into_make_service(),
        )
        .with_graceful_shutdown(wait_for(stop_rx.clone()))
        .into_future(),
    );
    let admin_task = tokio::spawn(
        axum::serve(admin, admin_router(state.clone()).into_make_service())
            .with_graceful_shutdown(wait_for(stop_rx.clone()))
            .into_future(),
    );

    // Everything built at start-up is built, routes included: what it freed can go back, and so
    // can the code only start-up ran. Earlier, the code that built the routes came back at once,
    // and with it the start-up code around it (the kernel reads ahead around a fault).
    crate::memory::spawn_trim();

    shutdown_signal().await;
    tracing::info!(grace = ?config.server.shutdown_grace, "shutting down: finishing in-flight requests");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(config.server.shutdown_grace, async {
        let _ = api_task.await;
        let _ = admin_task.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown grace period elapsed with requests still open");
    }
    let _ = checkpoint_task.await;
    let _ = dispatcher_task.await;
    // Every append already queued is committed before the writer stops.
    state.ledger.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// The REST routes' state and the data plane (which Gloxi's governed LLM calls use in process).
pub(crate) async fn data_plane(
    config: &Config,
    store: &Arc<warden_governance::Store>,
    ledger: &Arc<Ledger>,
    decisions: &Arc<warden_governance::Decisions>,
    webhooks: &Arc<warden_governance::Webhooks>,
    policies: &Arc<warden_policy::LivePolicySet>,
) -> anyhow::Result<(
    Arc<warden_proxy::ApiState>,
    Arc<warden_proxy::openai::Plane>,
)> {
    let api_state = Arc::new(warden_proxy::ApiState {
        limits: Arc::new(warden_proxy::RequestLimits::per_minute(
            u32::try_from(config.server.requests_per_minute).unwrap_or(u32::MAX),
        )),
        store: store.clone(),
        keys: Arc::new(warden_governance::KeyCache::new(store.clone())),
        ledger: ledger.clone(),
        decisions: decisions.clone(),
        webhooks: webhooks.clone(),
    });
    let plane = {
        let (config, api_state, policies) = (config.clone(), api_state.clone(), policies.clone());
        tokio::task::spawn_blocking(move || {
            warden_proxy::openai::Plane::new(&config, api_state, policies)
        })
        .await??
    };
    Ok((api_state, plane))
}

/// Gloxi, with the governed LLM of `gloxi.model` if one is configured (it must be served by
/// one of `upstreams`).
pub(crate) fn gloxi(
    config: &Config,
    store: &Arc<warden_governance::Store>,
    plane: &Arc<warden_proxy::openai::Plane>,
) -> anyhow::Result<Arc<warden_governance::gloxi::Gloxi>> {
    let generator: Option<Arc<dyn warden_governance::gloxi::Generate>> = match &config.gloxi.model
    {
        None => None,
        Some(model) if !plane.serves(model) => anyhow::bail!(
            "gloxi.model: no upstream serves the model `{model}`; add it to an upstream's `models` or set gloxi.model to null"
        ),
        Some(model) => {
            tracing::info!(model = %model, "Gloxi generates answers through the governed proxy path (agent `gloxi`)");
            Some(Arc::new(warden_proxy::openai::GovernedLlm::new(
                plane.clone(),
                model.clone(),
                config.gloxi.max_tokens,
            )))
        }
    };
    Ok(Arc::new(warden_governance::gloxi::Gloxi::new(
        store.clone(),
        plane.guardians(),
        generator,
    )))
}

/// The packs of `policy.dir`, watched for changes, or the built-in pack. An invalid directory
/// stops start-up with every problem; later, an invalid change is refused and the old set stays.
pub(crate) fn load_policies(
    config: &Config,
) -> anyhow::Result<(
    Arc<warden_policy::LivePolicySet>,
    Option<warden_policy::PolicyWatcher>,
)> {
    use warden_policy::{LivePolicySet, PolicySet, TrustPolicy};
    let Some(dir) = &config.policy.dir else {
        tracing::info!("policy: the built-in default pack");
        return Ok((
            Arc::new(LivePolicySet::new(PolicySet::with_default_pack())),
            None,
        ));
    };
    let live = Arc::new(
        LivePolicySet::from_dir(dir, TrustPolicy::AllowUnsigned)
            .map_err(|e| anyhow::anyhow!("policy.dir {}:\n{e}", dir.display()))?,
    );
    tracing::info!(dir = %dir.display(), hash = %live.current().hash(), "policy packs loaded");
    let watcher = live.watch(config.policy.reload_interval, |result| match result {
        Ok(r) if r.hash != r.previous_hash => {
            tracing::info!(hash = %r.hash, previous = %r.previous_hash, "policy packs reloaded")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("policy change refused, the previous packs stay in force: {e}"),
    });
    Ok((live, Some(watcher)))
}

/// The webhook signing secrets of `events.webhook_secrets` (read now, so that a missing one
/// stops start-up with its alias named) and the targets' allow-list.
pub(crate) fn webhook_settings(
    config: &Config,
) -> anyhow::Result<(
    warden_governance::WebhookSecrets,
    warden_governance::TargetPolicy,
)> {
    let mut secrets = warden_governance::WebhookSecrets::default();
    for s in &config.events.webhook_secrets {
        let value = match (&s.env, &s.file) {
            (Some(var), _) => std::env::var(var).map_err(|_| {
                anyhow::anyhow!(
                    "events.webhook_secrets[{}]: the environment variable {var} is not set",
                    s.alias
                )
            })?,
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!(
                    "events.webhook_secrets[{}]: {}: {e}",
                    s.alias,
                    path.display()
                )
            })?,
            (None, None) => unreachable!("the configuration requires env or file"),
        };
        secrets.insert(&s.alias, &value)?;
    }
    let targets = warden_governance::TargetPolicy::new(config.events.allowed_targets.clone());
    Ok((secrets, targets))
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such route")
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"code": code, "message": message}))).into_response()
}

/// `/metrics` in the Prometheus text format.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    match tokio::task::spawn_blocking(move || state.metrics.render()).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "metrics unavailable",
        ),
    }
}

/// Ready when the ledger (its store and its writer), the governance store and the webhook
/// queue answer; 503 naming the failing component. Upstreams are reported (configured or not) without being called: a
/// provider's outage must not take every sidecar out of its Service.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let st = state.clone();
    let checked = tokio::task::spawn_blocking(move || {
        (
            st.ledger.reader().size(),
            st.store.ping(),
            st.webhooks.queue_depths(),
        )
    })
    .await;
    let Ok((ledger, store, queue)) = checked else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "readiness check failed",
        );
    };
    let writer = state.ledger.writer_running();
    let ready = ledger.is_ok() && writer && store.is_ok() && queue.is_ok();
    let ledger = match ledger {
        Ok(records) if writer => json!({"status": "up", "records": records}),
        Ok(_) => json!({"status": "down", "error": "the ledger writer has stopped"}),
        Err(e) => json!({"status": "down", "error": e.to_string()}),
    };
    let store = match store {
        Ok(()) => json!({"status": "up"}),
        Err(e) => json!({"status": "down", "error": e.to_string()}),
    };
    let queue = match queue {
        Ok(d) => json!({"status": "up", "pending": d.pending, "dead_letters": d.dead}),
        Err(e) => json!({"status": "down", "error": e.to_string()}),
    };
    let upstreams = json!({
        "status": if state.upstreams.is_empty() { "none_configured" } else { "configured" },
        "names": state.upstreams,
    });
    let body = Json(json!({
        "status": if ready { "ready" } else { "not_ready" },
        "components": {"ledger": ledger, "store": store, "webhook_queue": queue, "upstreams": upstreams},
    }));
    if ready {
        body.into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}
