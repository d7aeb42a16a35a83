//! Token counting: Warden's compact `o200k_base` ([`Tokenizers::count`] for `gpt-4o`) against
//! the `tiktoken` crate's own engine on the same texts, in the same run. Both look the model's
//! encoding up by name on every call, as the proxy does.
//!
//! ```text
//! cargo bench -p warden-proxy --bench tokens
//! ```
//!
//! - `count_tokens/mixed_4k`: a 4 KiB prompt of prose, code, logs, JSON and a little Unicode
//!   (the guardians' benchmark text).
//! - `count_tokens/prose_4k`: English prompts only.
//! - `count_tokens/chat_200b`: one short chat message, the common case.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use warden_proxy::openai::Tokenizers;

#[path = "../../guardians/benches/support/mixed_text.rs"]
#[allow(dead_code)]
mod mixed_text;

fn bench(c: &mut Criterion) {
    let ours = Tokenizers::new(&[]).expect("embedded encodings");
    let theirs = |text: &str| {
        tiktoken::encoding_for_model("gpt-4o")
            .expect("gpt-4o")
            .count(text)
    };
    let prose = mixed_text::PROSE.repeat(4096 / mixed_text::PROSE.len() + 1);
    let texts = [
        ("mixed_4k", mixed_text::mixed(4096)),
        ("prose_4k", prose.chars().take(4096).collect()),
        (
            "chat_200b",
            "Can you summarise the attached quarterly report in five bullet points and flag any \
             figures that changed by more than 10% since last quarter? Keep it short."
                .to_string(),
        ),
    ];
    let mut group = c.benchmark_group("count_tokens");
    for (name, text) in &texts {
        assert_eq!(
            ours.count("gpt-4o", &[text], 0).0,
            theirs(text) as u64,
            "{name}: both engines count the same"
        );
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(format!("{name}/warden"), |b| {
            b.iter(|| black_box(ours.count("gpt-4o", &[black_box(text)], 0)))
        });
        group.bench_function(format!("{name}/tiktoken"), |b| {
            b.iter(|| black_box(theirs(black_box(text))))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
