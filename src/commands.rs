//! `warden keygen`, `warden ledger ...` and `warden config check`.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;
use warden_config::{Config, ProcessEnv};
use warden_ledger::{keys, Entry};

use crate::cli::{KeygenArgs, KeysCommand, LedgerCommand};

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("warden: {msg}");
    ExitCode::FAILURE
}

pub fn config_check(file: &Path) -> ExitCode {
    match warden_config::check(file, &ProcessEnv) {
        Ok(config) => {
            // The guardians' section is checked by the crate that owns its schema.
            if let Err(e) = warden_proxy::openai::guardians_from(&config.guardians) {
                eprintln!("{}: {e}", file.display());
                return ExitCode::FAILURE;
            }
            println!("{}: OK", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

pub fn keygen(config: &Config, args: KeygenArgs) -> ExitCode {
    let path = args
        .out
        .clone()
        .unwrap_or_else(|| config.ledger.signing_key_path(&config.data_dir));
    let key = if path.exists() {
        if !args.rotate {
            return fail(format!(
                "{} already exists; pass --rotate to replace it (the old public key is kept)",
                path.display()
            ));
        }
        keys::rotate(&path)
    } else {
        let key = keys::generate_signing_key();
        keys::write_key_pair(&path, &key).map(|_| key)
    };
    let key = match key {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let vk = key.verifying_key();
    let public = keys::public_path(&path);
    if args.json {
        println!(
            "{}",
            json!({
                "key_id": keys::key_id(&vk),
                "private_key": path,
                "public_key": public,
                "public_key_pem": keys::public_key_pem(&vk),
            })
        );
    } else {
        println!("key id:      {}", keys::key_id(&vk));
        println!("private key: {}", path.display());
        println!("public key:  {}", public.display());
        print!("{}", keys::public_key_pem(&vk));
    }
    ExitCode::SUCCESS
}

pub fn ledger(config: &Config, cmd: LedgerCommand) -> ExitCode {
    let pg = match crate::stores::connect(config) {
        Ok(pg) => pg,
        Err(e) => return fail(e),
    };
    let open = || crate::stores::open_reader(config, pg.clone());
    match cmd {
        LedgerCommand::Export { out } => {
            let reader = match open() {
                Ok(r) => r,
                Err(e) => return fail(e),
            };
            let result = match out {
                Some(p) => std::fs::File::create(&p)
                    .map_err(|e| format!("{}: {e}", p.display()))
                    .and_then(|f| {
                        let mut w = std::io::BufWriter::new(f);
                        reader.export(&mut w).map_err(|e| e.to_string())
                    }),
                None => {
                    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
                    reader.export(&mut w).map_err(|e| e.to_string())
                }
            };
            match result {
                Ok(n) => {
                    tracing::info!(records = n, "exported");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        LedgerCommand::Receipt { index } => print_json(open().and_then(|r| r.receipt(index))),
        LedgerCommand::Consistency { from, to } => {
            print_json(open().and_then(|r| r.consistency(from, to)))
        }
        LedgerCommand::Append {
            kind,
            tenant,
            concurrency,
        } => append(config, pg, kind, tenant, concurrency.max(1)),
    }
}

fn print_json<T: serde::Serialize>(r: Result<T, warden_ledger::LedgerError>) -> ExitCode {
    match r {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v).expect("serializes"));
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

/// Reads payloads from stdin and prints receipts in the order they become durable.
fn append(
    config: &Config,
    pg: Option<Arc<warden_pg::Pg>>,
    kind: String,
    tenant: String,
    concurrency: usize,
) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(e),
    };
    rt.block_on(async move {
        let ledger = match crate::stores::open_ledger(config, pg) {
            Ok(l) => Arc::new(l),
            Err(e) => return fail(e),
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(usize, String)>(concurrency);
        // Lines are read on a plain thread: stdin is blocking.
        std::thread::spawn(move || {
            for (n, line) in std::io::stdin().lock().lines().enumerate() {
                let Ok(line) = line else { break };
                if tx.blocking_send((n + 1, line)).is_err() {
                    break;
                }
            }
        });
        let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        let mut failed = false;
        while let Some((n, line)) = rx.recv().await {
            if line.trim().is_empty() {
                continue;
            }
            let payload: serde_json::Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("warden: stdin line {n}: not JSON: {e}");
                    failed = true;
                    continue;
                }
            };
            let permit = sem.clone().acquire_owned().await.expect("never closed");
            let (l, kind, tenant) = (ledger.clone(), kind.clone(), tenant.clone());
            tasks.spawn(async move {
                let r = l.append(Entry::new(kind, tenant, payload)).await;
                drop(permit);
                match r {
                    Ok(receipt) => {
                        let mut out = std::io::stdout().lock();
                        let line = serde_json::to_string(&receipt).expect("serializes");
                        // Printed only once durable: whoever reads this line may rely on it.
                        let _ = writeln!(out, "{line}");
                        true
                    }
                    Err(e) => {
                        eprintln!("warden: stdin line {n}: {e}");
                        false
                    }
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            failed |= !r.unwrap_or(false);
        }
        ledger.shutdown().await;
        if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    })
}

pub fn keys(config: &Config, cmd: KeysCommand) -> ExitCode {
    use warden_governance::parse_scopes;
    let pg = match crate::stores::connect(config) {
        Ok(pg) => pg,
        Err(e) => return fail(e),
    };
    let store = match crate::stores::open_store(config, pg.as_ref()) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    match cmd {
        KeysCommand::Create {
            tenant,
            scopes,
            label,
            agent,
            json,
        } => {
            let created = parse_scopes(&scopes)
                .map_err(warden_governance::StoreError::from)
                .and_then(|scopes| {
                    store.ensure_tenant(&tenant)?;
                    let k = store.create_key(&tenant, &scopes, label.as_deref())?;
                    if let Some(agent) = &agent {
                        if let Err(e) = store.bind_agent(&tenant, &k.id, agent) {
                            // Do not leave behind a working key without its binding.
                            let _ = store.revoke_key(&tenant, &k.id);
                            return Err(e);
                        }
                    }
                    Ok(k)
                });
            match created {
                Ok(k) if json => {
                    println!(
                        "{}",
                        json!({"key": k.key, "id": k.id, "tenant": k.tenant, "scopes": k.scopes, "agent": agent})
                    );
                    ExitCode::SUCCESS
                }
                Ok(k) => {
                    let scopes: Vec<String> = k.scopes.iter().map(ToString::to_string).collect();
                    println!("key:     {}", k.key);
                    println!("id:      {}", k.id);
                    println!("tenant:  {}", k.tenant);
                    println!("scopes:  {}", scopes.join(","));
                    eprintln!("Store the key now: it is not shown again.");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        KeysCommand::List { tenant, json } => match store.list_keys(&tenant) {
            Ok(keys) if json => {
                println!("{}", serde_json::to_string(&keys).expect("serializes"));
                ExitCode::SUCCESS
            }
            Ok(keys) => {
                for k in keys {
                    let scopes: Vec<String> = k.scopes.iter().map(ToString::to_string).collect();
                    println!(
                        "{}  {}…  {:<24}  {}{}",
                        k.id,
                        k.prefix,
                        scopes.join(","),
                        k.created_at,
                        if k.revoked_at.is_some() {
                            "  revoked"
                        } else {
                            ""
                        }
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        KeysCommand::Revoke { tenant, key_id } => match store.revoke_key(&tenant, &key_id) {
            Ok(()) => {
                println!("revoked {key_id}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
    }
}
