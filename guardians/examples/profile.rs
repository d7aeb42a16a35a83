//! Time each detector alone on the bench's mixed text (a quick breakdown, not a benchmark).
//!
//! ```text
//! cargo run --release -p warden-guardians --example profile
//! ```
//!
//! Prints wall-clock throughput and, on Linux, throughput per CPU second of this thread (from
//! `/proc/thread-self/schedstat`), which other processes competing for the cores disturb less.

use std::time::Instant;

use warden_guardians::{Channel, GuardianConfig, Guardians};

fn main() {
    let unit = "The quarterly report shows revenue grew 12% year over year, driven by the new subscription tier. \
Customer churn fell to 3.1%, and the support team closed 4,210 tickets.\n\
fn main() { let token = lexer.next_token(); println!(\"{} {}\", item.name, item.id); }\n\
2024-05-01T12:00:03Z INFO request_id=3f9a2c1e-8b7d-4e2f-9a1b-2c3d4e5f6a7b GET /api/v1/users/48213 200 14ms host=10.0.3.17\n\
{\"user\":\"alice\",\"fields\":{\"city\":\"Lyon\",\"zip\":\"69001\"},\"ok\":true}\n\
Résumé: Zoë visited São Paulo and Kraków — naïve café owners said «bonjour».\n";
    let text = unit.repeat(65536 / unit.len());
    for which in [
        "all",
        "pii",
        "secrets",
        "prompt_injection",
        "content_safety",
    ] {
        if std::env::var("ONLY").ok().is_some_and(|o| o != which) {
            continue;
        }
        let mut cfg = GuardianConfig::default();
        cfg.pii.enabled = which == "all" || which == "pii";
        cfg.secrets.enabled = which == "all" || which == "secrets";
        cfg.prompt_injection.enabled = which == "all" || which == "prompt_injection";
        cfg.content_safety.enabled = which == "all" || which == "content_safety";
        let g = Guardians::new(cfg).unwrap();
        let rounds: u32 = std::env::var("ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20);
        let t = Instant::now();
        let cpu0 = cpu_ns();
        for _ in 0..rounds {
            std::hint::black_box(g.scan_text(&text, Channel::UserInput));
        }
        let secs = t.elapsed().as_secs_f64() / f64::from(rounds);
        let mb = text.len() as f64 / 1e6;
        match (cpu0, cpu_ns()) {
            (Some(a), Some(b)) => {
                let cpu = (b - a) as f64 / 1e9 / f64::from(rounds);
                println!(
                    "{which:<18} {:>8.1} MB/s wall {:>8.1} MB/s per CPU second",
                    mb / secs,
                    mb / cpu
                );
            }
            _ => println!("{which:<18} {:>8.1} MB/s wall", mb / secs),
        }
    }
}

/// Nanoseconds this thread has run on a CPU, if the kernel says.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
