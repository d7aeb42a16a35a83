//! `warden scan`: the guardians over text or JSON lines, for tuning thresholds offline.
//!
//! The output of each input is the guardians' `ScanReport` as one JSON line: findings (entity,
//! byte span, score, action), the injection score and its evidence, the action each detector
//! would take, and the redacted text. The same engine serves the proxy and, later, the
//! `POST /v1/guardians/scan` route.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use warden_guardians::{Channel, GuardianConfig, Guardians, ScanRequest};

use crate::cli::ScanArgs;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("warden: {msg}");
    ExitCode::from(2)
}

fn load(config: &Option<PathBuf>) -> Result<Guardians, String> {
    let cfg = match config {
        None => GuardianConfig::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?
        }
    };
    Guardians::new(cfg).map_err(|e| e.to_string())
}

pub fn run(args: ScanArgs) -> ExitCode {
    let guardians = match load(&args.guardians) {
        Ok(g) => g,
        Err(e) => return fail(e),
    };
    let channel: Channel = match serde_json::from_value(serde_json::Value::String(args.channel.clone())) {
        Ok(c) => c,
        Err(_) => {
            return fail(format!(
                "--channel: unknown channel {:?}, expected user_input, tool_output, response or tool_args",
                args.channel
            ))
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let Some(path) = args.jsonl else {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            return fail(format!("stdin: {e}"));
        }
        let report = guardians.scan_text(&text, channel);
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(&report).expect("serializes")
        );
        return ExitCode::SUCCESS;
    };
    let input: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&path) {
            Ok(f) => Box::new(std::io::BufReader::new(f)),
            Err(e) => return fail(format!("{}: {e}", path.display())),
        }
    };
    let mut bad = 0usize;
    for (n, line) in input.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => return fail(format!("{}: line {}: {e}", path.display(), n + 1)),
        };
        if line.trim().is_empty() {
            continue;
        }
        // A line without a channel takes the one given on the command line.
        let req = serde_json::from_str::<serde_json::Value>(&line)
            .map_err(|e| e.to_string())
            .and_then(|mut v| {
                if let Some(obj) = v.as_object_mut() {
                    obj.entry("channel")
                        .or_insert_with(|| serde_json::to_value(channel).expect("serializes"));
                }
                serde_json::from_value::<ScanRequest>(v).map_err(|e| e.to_string())
            });
        match req {
            Ok(req) => {
                let report = guardians.scan_request(&req);
                let _ = writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&report).expect("serializes")
                );
            }
            Err(e) => {
                bad += 1;
                eprintln!(
                    "warden: {}: line {}: expected {{\"text\": ..., \"channel\": ...}}: {e}",
                    path.display(),
                    n + 1
                );
            }
        }
    }
    let _ = out.flush();
    if bad > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
