//! Crash safety: a process appending in a loop is killed with SIGKILL, several times over.
//! After each restart the ledger verifies and holds every record whose receipt was handed out.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[test]
fn sigkill_mid_append_loses_no_receipted_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut promised: HashMap<u64, String> = HashMap::new();
    for round in 0..3 {
        let mut child = warden()
            .arg("--data-dir")
            .arg(dir.path())
            .args(["ledger", "append", "--kind", "crash", "--concurrency", "32"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // An endless stream of payloads, until the child dies and the pipe breaks.
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            for i in 0u64.. {
                if writeln!(stdin, "{{\"round\": {round}, \"i\": {i}}}").is_err() {
                    break;
                }
            }
        });
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let start = Instant::now();
        let mut seen = 0;
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            // A line cut by the kill is not a receipt anyone was handed.
            let Ok(receipt) = serde_json::from_str::<Value>(&line) else {
                break;
            };
            promised.insert(
                receipt["index"].as_u64().unwrap(),
                receipt["record_hash"].as_str().unwrap().to_owned(),
            );
            seen += 1;
            if seen >= 2_000 || start.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        assert!(seen > 0, "round {round}: the child appended nothing");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let out = run(dir.path(), &["ledger", "export"], "");
        assert!(out.status.success(), "round {round}: {}", text(&out.stderr));
        let export = text(&out.stdout);
        let path = dir.path().join("export.jsonl");
        std::fs::write(&path, &export).unwrap();
        let v = run(dir.path(), &["verify", path.to_str().unwrap()], "");
        assert_eq!(
            v.status.code(),
            Some(0),
            "round {round}: {}",
            text(&v.stdout)
        );

        let stored: HashMap<u64, String> = export
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["type"] == "record")
            .map(|l| {
                (
                    l["index"].as_u64().unwrap(),
                    l["record_hash"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        for (index, hash) in &promised {
            assert_eq!(
                stored.get(index),
                Some(hash),
                "round {round}: receipted record {index} is missing or changed"
            );
        }
    }
}
