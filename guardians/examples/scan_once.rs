//! Scans the bench's 64 KiB mixed text `N` times with the detectors named by `ONLY` (`all`,
//! `pii`, `secrets`, `prompt_injection`, `content_safety`): a fixed workload for counting
//! instructions, which, unlike time, other processes on a shared machine do not disturb.
//!
//! ```text
//! cargo build --release -p warden-guardians --example scan_once
//! for n in 1 4; do ONLY=all N=$n valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/scan_once 2>&1 | grep refs; done
//! # instructions per scan = (refs at N=4 - refs at N=1) / 3  (excludes construction and the
//! # one-time lazy initialisation of the first scan)
//! ```
//!
//! The difference of two whole runs moves by a few per cent between runs of the same binary
//! (construction and the first scan vary). Steadier: one callgrind dump per scan, counted only
//! inside `scan_text`; files `cg.3` .. `cg.N` and `cg` are scans 2 .. N (all warm):
//!
//! ```text
//! ONLY=all N=5 valgrind --tool=callgrind --callgrind-out-file=cg \
//!     '--toggle-collect=*Guardians*scan_text*' '--dump-before=*raw_scan*' \
//!     target/release/examples/scan_once
//! grep -h '^totals:' cg.3 cg.4 cg.5 cg
//! ```

use warden_guardians::{Channel, GuardianConfig, Guardians};

#[path = "../benches/support/mixed_text.rs"]
#[allow(dead_code)]
mod mixed_text;
use mixed_text::mixed;

fn main() {
    // `BYTES` scans a shorter prefix instead: a prompt-sized text shows the fixed cost per scan.
    let bytes = std::env::var("BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64 * 1024);
    // `TEXT` scans that text instead.
    let text = std::env::var("TEXT").unwrap_or_else(|_| mixed(bytes));
    let which = std::env::var("ONLY").unwrap_or_else(|_| "all".into());
    let mut cfg = GuardianConfig::default();
    cfg.pii.enabled = which == "all" || which == "pii";
    cfg.secrets.enabled = which == "all" || which == "secrets";
    cfg.prompt_injection.enabled = which == "all" || which == "prompt_injection";
    cfg.content_safety.enabled = which == "all" || which == "content_safety";
    let g = Guardians::new(cfg).expect("config");
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for _ in 0..n {
        std::hint::black_box(g.scan_text(std::hint::black_box(&text), Channel::UserInput));
    }
}
