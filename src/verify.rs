//! `warden verify`: offline verification with public keys only.
//!
//! Exit codes: 0 valid, 1 invalid (checked and found wrong), 2 unusable input (cannot be
//! checked: unreadable, not the format, truncated, no keys).

use std::io::{BufRead, BufReader, Read};
use std::process::ExitCode;

use serde_json::{json, Value};
use warden_config::Config;
use warden_ledger::{ConsistencyClaim, ExportVerifier, Keyring, Receipt, VerifyError};

use crate::cli::{VerifyArgs, VerifyKind};

enum Verdict {
    Valid(Value),
    Invalid(VerifyError),
    Unusable(String),
}

pub fn run(config: &Config, args: VerifyArgs) -> ExitCode {
    let verdict = verify(config, &args);
    let (code, text, body) = match verdict {
        Verdict::Valid(details) => (
            0,
            format!("VALID: {}", describe(&details)),
            json!({"valid": true, "details": details}),
        ),
        Verdict::Invalid(e) if e.is_unusable() => (
            2,
            format!("UNUSABLE: {e}"),
            json!({"valid": false, "unusable": true, "error": e.to_string()}),
        ),
        Verdict::Invalid(e) => (
            1,
            format!("INVALID: {e}"),
            json!({"valid": false, "error": e.to_string(), "first_bad_index": e.first_bad_index()}),
        ),
        Verdict::Unusable(msg) => (
            2,
            format!("UNUSABLE: {msg}"),
            json!({"valid": false, "unusable": true, "error": msg}),
        ),
    };
    if args.json {
        println!("{body}");
    } else {
        println!("{text}");
    }
    ExitCode::from(code)
}

fn describe(d: &Value) -> String {
    match d["kind"].as_str() {
        Some("export") => format!(
            "export of {} records and {} checkpoints, origin {}, root {}, signed by {}",
            d["records"], d["checkpoints"], d["origin"], d["root_hash"], d["key_ids"]
        ),
        Some("receipt") => format!(
            "record {} is included in the ledger of {} records (checkpoint signed by {})",
            d["index"], d["tree_size"], d["key_id"]
        ),
        _ => format!(
            "the ledger of {} records extends the ledger of {} records",
            d["to"], d["from"]
        ),
    }
}

fn keyring(config: &Config, args: &VerifyArgs) -> Result<Keyring, String> {
    if !args.public_keys.is_empty() {
        return Keyring::from_files(&args.public_keys).map_err(|e| e.to_string());
    }
    let key = config.ledger.signing_key_path(&config.data_dir);
    let dir = key.parent().unwrap_or(std::path::Path::new("."));
    Keyring::from_dir(dir).map_err(|e| format!("{e} (pass --public-key FILE)"))
}

fn verify(config: &Config, args: &VerifyArgs) -> Verdict {
    let keys = match keyring(config, args) {
        Ok(k) => k,
        Err(e) => return Verdict::Unusable(e),
    };
    let input: Box<dyn Read> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        match std::fs::File::open(&args.file) {
            Ok(f) => Box::new(f),
            Err(e) => return Verdict::Unusable(format!("{}: {e}", args.file.display())),
        }
    };
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut first = String::new();
    if let Err(e) = reader.read_line(&mut first) {
        return Verdict::Unusable(format!("{}: {e}", args.file.display()));
    }
    let first_value: Option<Value> = serde_json::from_str(first.trim_end()).ok();
    let is_export = first_value.as_ref().is_some_and(|v| v["type"] == "header");
    let kind = args.kind.unwrap_or(if is_export {
        VerifyKind::Export
    } else {
        VerifyKind::Receipt
    });
    if kind == VerifyKind::Export {
        return verify_export(first, reader, &keys);
    }
    let mut rest = first;
    if let Err(e) = reader.read_to_string(&mut rest) {
        return Verdict::Unusable(format!("{}: {e}", args.file.display()));
    }
    let value: Value = match serde_json::from_str(&rest) {
        Ok(v) => v,
        Err(e) => return Verdict::Unusable(format!("not JSON: {e}")),
    };
    let kind = match args.kind {
        Some(k) => k,
        None if value.get("from").is_some() && value.get("to").is_some() => VerifyKind::Consistency,
        None if value.get("inclusion_proof").is_some() => VerifyKind::Receipt,
        None => {
            return Verdict::Unusable(
                "not an export (no header line), a receipt (no inclusion_proof) or a consistency claim (no from/to)".into(),
            )
        }
    };
    match kind {
        VerifyKind::Receipt => match serde_json::from_value::<Receipt>(value) {
            Err(e) => Verdict::Unusable(format!("malformed receipt: {e}")),
            Ok(r) => match r.verify(&keys) {
                Ok(()) => Verdict::Valid(json!({
                    "kind": "receipt", "index": r.index, "record_hash": r.record_hash,
                    "tree_size": r.checkpoint.tree_size, "root_hash": r.checkpoint.root_hash,
                    "key_id": r.checkpoint.key_id,
                })),
                Err(e) => Verdict::Invalid(e),
            },
        },
        VerifyKind::Consistency => match serde_json::from_value::<ConsistencyClaim>(value) {
            Err(e) => Verdict::Unusable(format!("malformed consistency claim: {e}")),
            Ok(c) => match c.verify(&keys) {
                Ok(()) => Verdict::Valid(json!({
                    "kind": "consistency", "from": c.from.tree_size, "to": c.to.tree_size,
                    "from_root": c.from.root_hash, "to_root": c.to.root_hash,
                })),
                Err(e) => Verdict::Invalid(e),
            },
        },
        VerifyKind::Export => unreachable!("handled above"),
    }
}

fn verify_export(first: String, reader: impl BufRead, keys: &Keyring) -> Verdict {
    let mut v = ExportVerifier::new(keys);
    let lines =
        std::iter::once(Ok(first.trim_end_matches(['\n', '\r']).to_owned())).chain(reader.lines());
    for line in lines {
        let line = match line {
            Ok(l) => l,
            Err(e) => return Verdict::Unusable(e.to_string()),
        };
        if let Err(e) = v.line(&line) {
            return Verdict::Invalid(e);
        }
    }
    match v.finish() {
        Ok(s) => Verdict::Valid(json!({
            "kind": "export", "origin": s.origin, "records": s.records, "checkpoints": s.checkpoints,
            "root_hash": s.root_hash, "chain_head": s.chain_head, "key_ids": s.key_ids,
        })),
        Err(e) => Verdict::Invalid(e),
    }
}
