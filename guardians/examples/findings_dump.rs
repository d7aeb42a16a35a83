//! Prints every finding, injection score and redaction for every labelled text under
//! `testdata/` (alone and joined into long texts), the bench's mixed text, JSON values built
//! from them and 100-byte and 37-byte streams of the long texts: a fingerprint of the detectors'
//! behaviour to `diff` before and after a change meant to alter only their speed.
//!
//! ```text
//! cargo run --release -p warden-guardians --example findings_dump > after.txt
//! ```
//!
//! The `eval` example prints summary figures; this prints each finding (detector, entity, rule,
//! span, score, action), so a change that moves one span or one score shows up.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use warden_guardians::{Channel, GuardianConfig, Guardians};

#[path = "../benches/support/mixed_text.rs"]
#[allow(dead_code)]
mod mixed_text;

/// Every `text` of every labelled set (`testdata/*/*.jsonl`), in path order: a set added
/// later is covered without editing this list.
fn texts() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata")
        .flat_map(|set| std::fs::read_dir(set.expect("testdata entry").path()).into_iter())
        .flatten()
        .map(|f| f.expect("testdata file").path())
        .filter(|f| f.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let data = std::fs::read_to_string(&f).expect("test data");
        for line in data.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).expect("json line");
            out.push(v["text"].as_str().expect("text").to_string());
        }
    }
    out
}

fn hash(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

fn main() {
    let g = Guardians::new(GuardianConfig::default()).expect("default config");
    let texts = texts();
    // Long texts: the labelled texts joined, in runs of about 16 KiB, with the separators that
    // put them in different contexts (new lines, JSON-ish glue, nothing).
    let mut long = Vec::new();
    for sep in ["\n", " ", "\",\"", ""] {
        let mut cur = String::new();
        for t in &texts {
            cur.push_str(t);
            cur.push_str(sep);
            if cur.len() > 16 * 1024 {
                long.push(std::mem::take(&mut cur));
            }
        }
        long.push(cur);
    }
    long.push(mixed_text::mixed(64 * 1024));
    long.push(mixed_text::mixed(4 * 1024));
    let channels = [Channel::UserInput, Channel::ToolOutput];
    for (i, t) in texts.iter().chain(&long).enumerate() {
        for ch in channels {
            let r = g.scan_text(t, ch);
            println!(
                "{i} {ch:?} blocked={} score={:?} evidence={:?} redacted={:x}",
                r.blocked,
                r.injection.score,
                r.injection.evidence,
                hash(&r.redacted)
            );
            for f in &r.findings {
                println!("  {f:?}");
            }
        }
    }
    // JSON: each long text split into leaves.
    for (i, t) in long.iter().enumerate() {
        let leaves: Vec<serde_json::Value> = t
            .split('\n')
            .map(|l| serde_json::Value::String(l.to_string()))
            .collect();
        let r = g.scan_json(&serde_json::Value::Array(leaves), Channel::ToolOutput);
        println!(
            "json {i} blocked={} redacted={:x}",
            r.blocked,
            hash(&r.redacted.to_string())
        );
        for f in &r.findings {
            println!("  {f:?}");
        }
    }
    // Streams of the long texts.
    for (i, t) in long.iter().enumerate() {
        for size in [100, 37] {
            let mut s = g.stream(Channel::Response);
            let mut released = String::new();
            let mut start = 0;
            while start < t.len() {
                let mut end = (start + size).min(t.len());
                while !t.is_char_boundary(end) {
                    end += 1;
                }
                let o = s.push(&t[start..end]);
                released.push_str(&o.text);
                for f in &o.findings {
                    println!("  stream {i} {size} {f:?}");
                }
                start = end;
            }
            let o = s.finish();
            released.push_str(&o.text);
            for f in &o.findings {
                println!("  stream {i} {size} {f:?}");
            }
            println!(
                "stream {i} {size} blocked={} score={:?} released={:x}",
                s.is_blocked(),
                s.injection_score(),
                hash(&released)
            );
        }
    }
}
