//! `loadgen`: a small HTTP load generator for the proxy benchmark (`benches/proxy.sh`).
//!
//! Open loop (`--rate R`): request i is due at start + i/R and its latency is measured from
//! that due time, not from when it was sent, so a stalled server shows up in the percentiles
//! instead of silently lowering the rate (no coordinated omission). Closed loop
//! (`--concurrency N`): N workers send back to back, for the maximum throughput.
//!
//! `loadgen URL --key KEY [--rate R | --concurrency N] [--seconds S] [--stream] [--model M]`
//! prints one JSON line: requests, errors, achieved rate, p50/p90/p99/p99.9/max in µs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

struct Args {
    url: String,
    key: String,
    rate: Option<f64>,
    concurrency: Option<usize>,
    seconds: f64,
    stream: bool,
    model: String,
}

fn args() -> Args {
    let mut a = Args {
        url: String::new(),
        key: "none".into(),
        rate: None,
        concurrency: None,
        seconds: 10.0,
        stream: false,
        model: "gpt-4o-mini".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{x} needs a value"));
        match x.as_str() {
            "--key" => a.key = val(),
            "--rate" => a.rate = Some(val().parse().expect("a number")),
            "--concurrency" => a.concurrency = Some(val().parse().expect("a number")),
            "--seconds" => a.seconds = val().parse().expect("a number"),
            "--model" => a.model = val(),
            "--stream" => a.stream = true,
            _ => a.url = x,
        }
    }
    assert!(
        !a.url.is_empty(),
        "usage: loadgen URL [--key K] [--rate R | --concurrency N] [--seconds S] [--stream]"
    );
    a
}

/// A realistic agent call: a system prompt, some history and a question (about 1.3 KB).
fn body(model: &str, stream: bool) -> Vec<u8> {
    let system = "You are a support assistant for an online shop. Answer briefly and politely. \
        Never reveal internal notes. Use the order tools when the customer asks about an order.";
    let history = "Customer: Hi, I ordered a pair of running shoes last week and they have not \
        arrived yet. The tracking page says the parcel left the warehouse on Monday. \
        Assistant: I am sorry to hear that. Could you give me your order number so I can check?";
    let question = "say:Sure, it is order 48213. Can you tell me when it will arrive and \
        whether I can still change the delivery address to my office? Thanks a lot for the help.";
    serde_json::to_vec(&json!({
        "model": model,
        "stream": stream,
        "max_tokens": 200,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": history},
            {"role": "user", "content": question},
        ],
    }))
    .expect("serializes")
}

async fn one(client: &reqwest::Client, a: &Args, body: &[u8]) -> bool {
    match client
        .post(&a.url)
        .bearer_auth(&a.key)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
    {
        Ok(r) => {
            let ok = r.status().is_success();
            ok && r.bytes().await.is_ok()
        }
        Err(_) => false,
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = Arc::new(args());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .expect("a client");
    let body: Arc<Vec<u8>> = Arc::new(body(&a.model, a.stream));
    let duration = Duration::from_secs_f64(a.seconds);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, bool)>();
    let start = Instant::now();
    if let Some(rate) = a.rate {
        let total = (rate * a.seconds) as u64;
        for i in 0..total {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            let (client, a, body, tx) = (client.clone(), a.clone(), body.clone(), tx.clone());
            tokio::spawn(async move {
                let ok = one(&client, &a, &body).await;
                let _ = tx.send((due.elapsed().as_micros() as u64, ok));
            });
        }
    } else {
        let n = a.concurrency.unwrap_or(32);
        for _ in 0..n {
            let (client, a, body, tx) = (client.clone(), a.clone(), body.clone(), tx.clone());
            tokio::spawn(async move {
                while start.elapsed() < duration {
                    let t = Instant::now();
                    let ok = one(&client, &a, &body).await;
                    let _ = tx.send((t.elapsed().as_micros() as u64, ok));
                }
            });
        }
    }
    drop(tx);
    let mut lat = Vec::new();
    let mut errors = 0u64;
    while let Some((us, ok)) = rx.recv().await {
        if ok {
            lat.push(us);
        } else {
            errors += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    println!(
        "{}",
        json!({
            "requests": lat.len() as u64 + errors,
            "errors": errors,
            "rate": ((lat.len() as f64 + errors as f64) / elapsed * 10.0).round() / 10.0,
            "p50_us": pct(&lat, 50.0),
            "p90_us": pct(&lat, 90.0),
            "p99_us": pct(&lat, 99.0),
            "p999_us": pct(&lat, 99.9),
            "max_us": lat.last().copied().unwrap_or(0),
        })
    );
}
