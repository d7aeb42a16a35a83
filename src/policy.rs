//! `warden policy ...`: check, test and sign policy packs with the engine Warden runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use warden_policy::{load_pack_file, run_cases, sign_pack, Pack, PolicySet, TrustPolicy};

use crate::cli::PolicyCommand;

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("{msg}");
    ExitCode::from(code)
}

/// A pack file, or every pack of a directory; `default` for the built-in pack.
fn load(path: &Path) -> Result<PolicySet, warden_policy::PackError> {
    if path.as_os_str() == "default" {
        return Ok(PolicySet::with_default_pack());
    }
    if path.is_dir() {
        PolicySet::load_dir(path, &TrustPolicy::AllowUnsigned)
    } else {
        PolicySet::new([load_pack_file(path, &TrustPolicy::AllowUnsigned)?])
    }
}

pub fn run(cmd: PolicyCommand) -> ExitCode {
    match cmd {
        PolicyCommand::Check { packs } => check(&packs),
        PolicyCommand::Test { pack, cases, json } => test(&pack, &cases, json),
        PolicyCommand::Sign { pack, key } => sign(&pack, &key),
    }
}

fn check(paths: &[PathBuf]) -> ExitCode {
    let mut bad = false;
    for p in paths {
        match load(p) {
            Ok(set) => {
                for pack in set.packs() {
                    println!(
                        "{}: OK {} {} {}",
                        p.display(),
                        pack.id(),
                        pack.version(),
                        pack.hash()
                    );
                }
            }
            Err(e) => {
                bad = true;
                eprintln!("{e}");
            }
        }
    }
    if bad {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn test(pack: &Path, cases: &Path, json: bool) -> ExitCode {
    let set = match load(pack) {
        Ok(s) => s,
        Err(e) => return fail(2, e),
    };
    let text = match std::fs::read_to_string(cases) {
        Ok(t) => t,
        Err(e) => return fail(2, format!("{}: {e}", cases.display())),
    };
    let report = match run_cases(&set, &text, &cases.display().to_string()) {
        Ok(r) => r,
        Err(e) => return fail(2, e),
    };
    if json {
        println!("{}", serde_json::to_string(&report).expect("serializes"));
    } else {
        for c in &report.cases {
            let actual = c
                .actual_verdict
                .map(|v| v.as_str().to_owned())
                .or_else(|| c.error.clone())
                .unwrap_or_default();
            if c.passed {
                println!("ok    {}", c.name);
            } else {
                println!(
                    "FAIL  {}: expected {}{}, got {} {:?}",
                    c.name,
                    c.expected_verdict.as_str(),
                    c.expected_reason_codes
                        .as_ref()
                        .map(|r| format!(" {r:?}"))
                        .unwrap_or_default(),
                    actual,
                    c.actual_reason_codes
                );
            }
        }
        println!("{} passed, {} failed", report.passed, report.failed);
    }
    if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn sign(pack: &Path, key: &Path) -> ExitCode {
    let key = match warden_ledger::keys::load_signing_key(key) {
        Ok(k) => k,
        Err(e) => return fail(2, e),
    };
    let text = match std::fs::read_to_string(pack) {
        Ok(t) => t,
        Err(e) => return fail(2, format!("{}: {e}", pack.display())),
    };
    let line = match sign_pack(&text, &key) {
        Ok(l) => l,
        Err(e) => return fail(1, e),
    };
    let sig = warden_policy::trust::sig_path(pack);
    // A pack may carry signatures of several keys, one per line.
    let mut existing = std::fs::read_to_string(&sig).unwrap_or_default();
    if !existing.lines().any(|l| l == line.trim_end()) {
        existing.push_str(&line);
    }
    if let Err(e) = std::fs::write(&sig, existing) {
        return fail(2, format!("{}: {e}", sig.display()));
    }
    let hash = Pack::from_yaml(&text, "")
        .map(|p| p.hash().to_string())
        .unwrap_or_default();
    println!("signed {} ({hash}) -> {}", pack.display(), sig.display());
    ExitCode::SUCCESS
}
