//! Precision, recall and F1 per detector on the labelled sets under `guardians/testdata/`.
//!
//! ```text
//! cargo run --release -p warden-guardians --example eval            # summary
//! cargo run --release -p warden-guardians --example eval -- -v      # also list misses
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Deserialize;
use warden_guardians::{Channel, DetectorId, GuardianConfig, Guardians};

#[path = "../tests/common/content_eval.rs"]
mod content_eval;

#[derive(Deserialize)]
struct PiiLine {
    text: String,
    spans: Vec<Span>,
}

#[derive(Deserialize)]
struct Span {
    entity_type: String,
    start: usize,
    end: usize,
}

#[derive(Deserialize)]
struct Labelled {
    text: String,
    label: String,
    source: String,
    #[serde(default)]
    channel: Option<Channel>,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: usize,
    fp: usize,
    fn_: usize,
}

impl Counts {
    fn p(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    fn r(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    fn f1(&self) -> f64 {
        let (p, r) = (self.p(), self.r());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

const FORMAT_ENTITIES: [&str; 6] = [
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
];

fn main() {
    let verbose = std::env::args().any(|a| a == "-v");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let t0 = Instant::now();
    let g = Guardians::new(GuardianConfig::default()).expect("default config");
    println!(
        "engine built in {:.1} ms ({} secret rules)\n",
        t0.elapsed().as_secs_f64() * 1e3,
        g.secret_rule_count()
    );

    // ---- PII ----
    let lines: Vec<PiiLine> = read(&dir.join("pii/presidio_sentences.jsonl"));
    let mut per: BTreeMap<&str, Counts> = BTreeMap::new();
    for l in &lines {
        let r = g.scan_text(&l.text, Channel::UserInput);
        let preds: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.detector == DetectorId::Pii)
            .collect();
        let golds: Vec<&Span> = l
            .spans
            .iter()
            .filter(|s| FORMAT_ENTITIES.contains(&s.entity_type.as_str()))
            .collect();
        let mut used = vec![false; golds.len()];
        for p in &preds {
            let ent = FORMAT_ENTITIES
                .iter()
                .find(|e| **e == p.entity_type)
                .copied();
            let Some(ent) = ent else { continue }; // MAC/CRYPTO: no gold labels in this set
            let hit = golds.iter().enumerate().find(|(i, s)| {
                !used[*i] && s.entity_type == ent && p.start < s.end && s.start < p.end
            });
            match hit {
                Some((i, _)) => {
                    used[i] = true;
                    per.entry(ent).or_default().tp += 1;
                }
                None => {
                    per.entry(ent).or_default().fp += 1;
                    if verbose {
                        println!(
                            "  PII FP {ent}: {:?} in {:?}",
                            &l.text[p.start..p.end],
                            l.text
                        );
                    }
                }
            }
        }
        for (i, s) in golds.iter().enumerate() {
            if !used[i] {
                per.entry(
                    FORMAT_ENTITIES
                        .iter()
                        .find(|e| **e == s.entity_type)
                        .unwrap(),
                )
                .or_default()
                .fn_ += 1;
                if verbose {
                    println!(
                        "  PII FN {}: {:?} in {:?}",
                        s.entity_type,
                        &l.text[s.start..s.end],
                        l.text
                    );
                }
            }
        }
    }
    println!(
        "PII — presidio-evaluator sentences ({} sentences), span overlap with the same entity type",
        lines.len()
    );
    println!(
        "  {:<14} {:>5} {:>5} {:>5} {:>7} {:>7} {:>7}",
        "entity", "TP", "FP", "FN", "P", "R", "F1"
    );
    let mut all = Counts::default();
    for e in FORMAT_ENTITIES {
        let c = per.get(e).copied().unwrap_or_default();
        all.tp += c.tp;
        all.fp += c.fp;
        all.fn_ += c.fn_;
        println!(
            "  {:<14} {:>5} {:>5} {:>5} {:>7.3} {:>7.3} {:>7.3}",
            e,
            c.tp,
            c.fp,
            c.fn_,
            c.p(),
            c.r(),
            c.f1()
        );
    }
    println!(
        "  {:<14} {:>5} {:>5} {:>5} {:>7.3} {:>7.3} {:>7.3}\n",
        "micro (all)",
        all.tp,
        all.fp,
        all.fn_,
        all.p(),
        all.r(),
        all.f1()
    );

    // ---- Secrets ----
    let mut pos: Vec<Labelled> = read(&dir.join("secrets/generated.jsonl"));
    let n_generated = pos.len();
    pos.extend(read::<Labelled>(&dir.join("secrets/providers.jsonl")));
    let neg: Vec<Labelled> = read(&dir.join("secrets/benign.jsonl"));
    let hit = |l: &Labelled| {
        g.scan_text(&l.text, Channel::UserInput)
            .findings
            .iter()
            .any(|f| f.detector == DetectorId::Secrets)
    };
    let mut gen_hits = 0;
    let mut prov = (0, 0);
    for (i, l) in pos.iter().enumerate() {
        let h = hit(l);
        if i < n_generated {
            gen_hits += usize::from(h);
        } else {
            prov.0 += usize::from(h);
            prov.1 += 1;
        }
        if !h && verbose {
            println!("  SECRET FN {}: {:?}", l.source, l.text);
        }
    }
    let mut fps = 0;
    for l in &neg {
        if hit(l) {
            fps += 1;
            if verbose {
                println!("  SECRET FP: {:?}", l.text);
            }
        }
    }
    let c = Counts {
        tp: gen_hits + prov.0,
        fp: fps,
        fn_: pos.len() - gen_hits - prov.0,
    };
    println!(
        "Secrets — {} positives ({} from the rules' regexes, {} provider formats), {} benign",
        pos.len(),
        n_generated,
        prov.1,
        neg.len()
    );
    println!(
        "  recall (rand_regex)   {:.3}  ({}/{})",
        ratio(gen_hits, n_generated),
        gen_hits,
        n_generated
    );
    println!(
        "  recall (providers)    {:.3}  ({}/{})",
        ratio(prov.0, prov.1),
        prov.0,
        prov.1
    );
    println!("  recall (all)          {:.3}", c.r());
    println!(
        "  false-positive rate   {:.3}  ({}/{} benign samples)",
        ratio(fps, neg.len()),
        fps,
        neg.len()
    );
    println!("  precision {:.3}  F1 {:.3}\n", c.p(), c.f1());

    // ---- Injection ----
    let attacks: Vec<Labelled> = read(&dir.join("injection/attacks.jsonl"));
    let benign: Vec<Labelled> = read(&dir.join("injection/benign.jsonl"));
    let cfg = g.config().prompt_injection.clone();
    for (name, thr) in [("flag", cfg.flag_threshold), ("block", cfg.block_threshold)] {
        let mut c = Counts::default();
        let mut by_source: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut fp_by_source: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut tn = 0;
        for l in attacks.iter().chain(&benign) {
            let r = g.scan_text(&l.text, l.channel.unwrap_or(Channel::UserInput));
            let detected = r.injection.score >= thr;
            let src = l
                .source
                .split(['/', '.'])
                .take(2)
                .collect::<Vec<_>>()
                .join("/");
            if l.label == "attack" {
                let e = by_source.entry(src).or_default();
                e.1 += 1;
                if detected {
                    c.tp += 1;
                    e.0 += 1;
                } else {
                    c.fn_ += 1;
                    if verbose && name == "flag" {
                        println!(
                            "  INJ FN {} ({:.2}): {:?}",
                            l.source,
                            r.injection.score,
                            l.text.chars().take(160).collect::<String>()
                        );
                    }
                }
            } else {
                let e = fp_by_source.entry(src).or_default();
                e.1 += 1;
                if detected {
                    c.fp += 1;
                    e.0 += 1;
                    if verbose && name == "flag" {
                        println!(
                            "  INJ FP {} ({:.2} {:?}): {:?}",
                            l.source,
                            r.injection.score,
                            r.injection.evidence,
                            l.text.chars().take(160).collect::<String>()
                        );
                    }
                } else {
                    tn += 1;
                }
            }
        }
        println!(
            "Injection — {} attacks, {} benign; detected = score >= {thr} ({name} threshold)",
            attacks.len(),
            benign.len()
        );
        println!(
            "  precision {:.3}  recall {:.3}  F1 {:.3}  false-positive rate {:.3} ({}/{})",
            c.p(),
            c.r(),
            c.f1(),
            ratio(c.fp, c.fp + tn),
            c.fp,
            c.fp + tn
        );
        for (s, (h, n)) in &by_source {
            println!("    recall {:<36} {:.3} ({h}/{n})", s, ratio(*h, *n));
        }
        for (s, (h, n)) in &fp_by_source {
            println!("    FP rate {:<35} {:.3} ({h}/{n})", s, ratio(*h, *n));
        }
        println!();
    }
    // Operating curve: the same sets at other thresholds.
    let scored: Vec<(bool, f32)> = attacks
        .iter()
        .chain(&benign)
        .map(|l| {
            (
                l.label == "attack",
                g.scan_text(&l.text, l.channel.unwrap_or(Channel::UserInput))
                    .injection
                    .score,
            )
        })
        .collect();
    println!("Injection operating curve (threshold: precision / recall / F1 / FP rate)");
    for thr in [0.3f32, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9] {
        let tp = scored.iter().filter(|(a, s)| *a && *s >= thr).count();
        let fp = scored.iter().filter(|(a, s)| !*a && *s >= thr).count();
        let pos = scored.iter().filter(|(a, _)| *a).count();
        let c = Counts {
            tp,
            fp,
            fn_: pos - tp,
        };
        println!(
            "  {thr:.2}: {:.3} / {:.3} / {:.3} / {:.3}",
            c.p(),
            c.r(),
            c.f1(),
            ratio(fp, scored.len() - pos)
        );
    }
    let held: Vec<Labelled> = read(&dir.join("injection/heldout_attacks.jsonl"));
    let flag = g.config().prompt_injection.flag_threshold;
    let block = g.config().prompt_injection.block_threshold;
    let scores: Vec<f32> = held
        .iter()
        .map(|l| g.scan_text(&l.text, Channel::UserInput).injection.score)
        .collect();
    let at = |t: f32| scores.iter().filter(|s| **s >= t).count();
    println!(
        "\nInjection held-out (pyrit in-the-wild templates, not used while writing rules): recall {:.3} at {flag} ({}/{}), {:.3} at {block}\n",
        ratio(at(flag), held.len()),
        at(flag),
        held.len(),
        ratio(at(block), held.len())
    );
    // ---- Content safety ----
    let items = content_eval::load(&content_eval::data_path());
    let scored = content_eval::score(&g, &items);
    content_eval::print_all(&scored, verbose.then_some("dev"));
    println!();

    println!("total eval time {:.2} s", t0.elapsed().as_secs_f64());
}
