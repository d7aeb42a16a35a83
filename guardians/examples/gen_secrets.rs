//! Generates the secrets evaluation set (committed under `testdata/secrets/`).
//!
//! ```text
//! cargo run -p warden-guardians --example gen_secrets -- guardians/testdata/secrets
//! ```
//!
//! Fixed seed. Three files, one JSON object a line (`text`, `label`, `source`):
//! - `generated.jsonl`: 3 strings per gitleaks rule drawn from the rule's own regex with
//!   `rand_regex` (positives; tests the engine against its rules, including keyword and entropy gates);
//! - `providers.jsonl`: tokens in providers' documented formats, written the way they appear in
//!   code, configs, shells and logs (positives);
//! - `benign.jsonl`: ordinary code, configuration and log lines with the usual look-alikes: UUIDs,
//!   git and content hashes, version strings, placeholders, variable references (negatives).

use std::fs::File;
use std::io::{BufWriter, Write};

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::Deserialize;

#[derive(Deserialize)]
struct RuleFile {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    id: String,
    regex: Option<String>,
}

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";
const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URLSAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn pick(rng: &mut StdRng, set: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| char::from(*set.choose(rng).unwrap()))
        .collect()
}

fn line(out: &mut impl Write, text: &str, label: &str, source: &str) {
    let v = serde_json::json!({"text": text, "label": label, "source": source});
    writeln!(out, "{v}").unwrap();
}

/// rand_regex cannot generate look-arounds: drop word boundaries and anchors (outside classes).
fn strip_anchors(p: &str) -> String {
    let p = p
        .replace(r"(?-u:\b)", "")
        .replace(r"(?-u:\B)", "")
        .replace(r"\z", "")
        .replace(r"\A", "");
    let mut out = String::with_capacity(p.len());
    let mut in_class = false;
    let mut chars = p.chars().peekable();
    let mut prev = '\0';
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(c);
            if let Some(n) = chars.next() {
                out.push(n);
                prev = n;
            }
            continue;
        }
        match c {
            '[' if !in_class => in_class = true,
            ']' if in_class && prev != '[' && prev != '^' => in_class = false,
            '^' | '$' if !in_class => {
                prev = c;
                continue;
            }
            _ => {}
        }
        out.push(c);
        prev = c;
    }
    out
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: gen_secrets OUTDIR");
    let mut rng = StdRng::seed_from_u64(20_240_601);
    let file: RuleFile = toml::from_str(warden_guardians::GITLEAKS_TOML).unwrap();

    // 1. From the rules' own regexes.
    let mut out = BufWriter::new(File::create(format!("{dir}/generated.jsonl")).unwrap());
    let mut skipped = Vec::new();
    for r in &file.rules {
        let Some(re) = &r.regex else { continue };
        // rand_regex speaks the regex crate's syntax; the engine's translation makes RE2 classes ASCII.
        let pattern = strip_anchors(&warden_guardians::__go_regex_to_rust(re));
        let hir = match regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(true)
            .build()
            .parse(&pattern)
        {
            Ok(h) => h,
            Err(_) => match regex_syntax::Parser::new().parse(&pattern) {
                Ok(h) => h,
                Err(e) => {
                    skipped.push(format!("{}: {e}", r.id));
                    continue;
                }
            },
        };
        let gen = match rand_regex::Regex::with_hir(hir, 24) {
            Ok(g) => g,
            Err(e) => {
                skipped.push(format!("{}: {e}", r.id));
                continue;
            }
        };
        for _ in 0..3 {
            let s: String = rng.sample(&gen);
            let s = s.replace(['\n', '\r'], " ");
            line(&mut out, &s, "secret", &format!("rand_regex:{}", r.id));
        }
    }
    out.flush().unwrap();
    for s in &skipped {
        eprintln!("skipped {s}");
    }

    // 2. Provider formats in realistic contexts.
    let mut out = BufWriter::new(File::create(format!("{dir}/providers.jsonl")).unwrap());
    let contexts: &[&str] = &[
        "export {NAME}={TOKEN}",
        "{NAME}=\"{TOKEN}\"",
        "{\"{name}\": \"{TOKEN}\"}",
        "{name}: {TOKEN}",
        "curl -H \"Authorization: Bearer {TOKEN}\" https://api.example.net/v1/me",
        "const {name} = '{TOKEN}';",
        "os.environ[\"{NAME}\"] = \"{TOKEN}\"",
        "Using {name} {TOKEN} for the deploy step",
    ];
    for i in 0..300 {
        let (name, token): (&str, String) = match i % 20 {
            0 => (
                "aws_access_key_id",
                format!("AKIA{}", pick(&mut rng, B32, 16)),
            ),
            1 => ("github_token", format!("ghp_{}", pick(&mut rng, ALNUM, 36))),
            2 => (
                "github_pat",
                format!(
                    "github_pat_{}_{}",
                    pick(&mut rng, ALNUM, 22),
                    pick(&mut rng, ALNUM, 59)
                ),
            ),
            3 => (
                "gitlab_token",
                format!("glpat-{}", pick(&mut rng, URLSAFE, 20)),
            ),
            4 => (
                "slack_bot_token",
                format!(
                    "xoxb-{}-{}-{}",
                    pick(&mut rng, b"0123456789", 12),
                    pick(&mut rng, b"0123456789", 13),
                    pick(&mut rng, ALNUM, 24)
                ),
            ),
            5 => (
                "stripe_secret_key",
                format!("sk_live_{}", pick(&mut rng, ALNUM, 24)),
            ),
            6 => (
                "openai_api_key",
                format!(
                    "sk-proj-{}T3BlbkFJ{}",
                    pick(&mut rng, URLSAFE, 58),
                    pick(&mut rng, URLSAFE, 58)
                ),
            ),
            7 => (
                "anthropic_api_key",
                format!("sk-ant-api03-{}AA", pick(&mut rng, URLSAFE, 93)),
            ),
            8 => (
                "google_api_key",
                format!("AIza{}", pick(&mut rng, URLSAFE, 35)),
            ),
            9 => (
                "sendgrid_api_key",
                format!(
                    "SG.{}.{}",
                    pick(&mut rng, URLSAFE, 22),
                    pick(&mut rng, URLSAFE, 43)
                ),
            ),
            10 => ("npm_token", format!("npm_{}", pick(&mut rng, ALNUM, 36))),
            11 => (
                "pypi_token",
                format!("pypi-AgEIcHlwaS5vcmc{}", pick(&mut rng, URLSAFE, 60)),
            ),
            12 => (
                "hf_token",
                format!(
                    "hf_{}",
                    pick(
                        &mut rng,
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                        34
                    )
                ),
            ),
            13 => (
                "shopify_access_token",
                format!("shpat_{}", pick(&mut rng, HEX, 32)),
            ),
            14 => (
                "digitalocean_token",
                format!("dop_v1_{}", pick(&mut rng, HEX, 64)),
            ),
            15 => ("twilio_api_key", format!("SK{}", pick(&mut rng, HEX, 32))),
            16 => (
                "jwt",
                format!(
                    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}.{}",
                    pick(&mut rng, URLSAFE, 40),
                    pick(&mut rng, URLSAFE, 43)
                ),
            ),
            17 => (
                "azure_storage",
                format!(
                    "DefaultEndpointsProtocol=https;AccountName=prodstore;AccountKey={}==",
                    pick(&mut rng, B64, 86)
                ),
            ),
            18 => (
                "db_password",
                format!(
                    "{}{}!{}",
                    pick(&mut rng, ALNUM, 6),
                    pick(&mut rng, b"0123456789", 3),
                    pick(&mut rng, ALNUM, 8)
                ),
            ),
            _ => (
                "private_key",
                format!(
                    "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----",
                    pick(&mut rng, B64, 128)
                ),
            ),
        };
        let ctx = contexts.choose(&mut rng).unwrap();
        let text = ctx
            .replace("{NAME}", &name.to_ascii_uppercase())
            .replace("{name}", name)
            .replace("{TOKEN}", &token);
        line(&mut out, &text, "secret", &format!("provider:{name}"));
    }
    out.flush().unwrap();

    // 3. Benign look-alikes from code, configs and logs.
    let mut out = BufWriter::new(File::create(format!("{dir}/benign.jsonl")).unwrap());
    let uuid = |rng: &mut StdRng| {
        format!(
            "{}-{}-4{}-a{}-{}",
            pick(rng, HEX, 8),
            pick(rng, HEX, 4),
            pick(rng, HEX, 3),
            pick(rng, HEX, 3),
            pick(rng, HEX, 12)
        )
    };
    for i in 0..600 {
        let text = match i % 30 {
            0 => format!(
                "commit {}\nAuthor: Jane Doe <jane@example.org>",
                pick(&mut rng, HEX, 40)
            ),
            1 => format!(
                "request_id={} status=200 duration_ms={}",
                uuid(&mut rng),
                rng.random_range(1..900)
            ),
            2 => format!(
                "image: registry.example.org/app@sha256:{}",
                pick(&mut rng, HEX, 64)
            ),
            3 => format!(
                "\"version\": \"{}.{}.{}\",",
                rng.random_range(0..9),
                rng.random_range(0..30),
                rng.random_range(0..99)
            ),
            4 => "api_key = \"<your-api-key>\"".to_string(),
            5 => "OPENAI_API_KEY=${OPENAI_API_KEY}".to_string(),
            6 => "password: changeme".to_string(),
            7 => "token: XXXXXXXXXXXXXXXXXXXXXXXX".to_string(),
            8 => format!("session_id: {}", uuid(&mut rng)),
            9 => format!("sha1sum: {}  release.tar.gz", pick(&mut rng, HEX, 40)),
            10 => "let token = lexer.next_token()?;".to_string(),
            11 => "primary_key = \"id\"\nforeign_key = \"user_id\"".to_string(),
            12 => format!(
                "cache_key = \"user:{}:profile\"",
                rng.random_range(1000..99999)
            ),
            13 => {
                "auth_method: oauth2\ntoken_url: https://login.example.org/oauth/token".to_string()
            }
            14 => "access_log /var/log/nginx/access.log combined;".to_string(),
            15 => "api_version = \"2023-10-01\"".to_string(),
            16 => format!(
                "GET /api/v1/users/{} 200 {}ms",
                rng.random_range(1..99999),
                rng.random_range(1..500)
            ),
            17 => "secretName: my-app-secrets\nkey: database-url".to_string(),
            18 => format!("md5 checksum {}", pick(&mut rng, HEX, 32)),
            19 => "Authorization: Bearer {{ token }}".to_string(),
            20 => format!(
                "trace_id={} span_id={}",
                pick(&mut rng, HEX, 32),
                pick(&mut rng, HEX, 16)
            ),
            21 => "password = os.environ[\"DB_PASSWORD\"]".to_string(),
            22 => "SECRET_KEY = get_secret(\"django-secret-key\")".to_string(),
            23 => format!("\"integrity\": \"sha512-{}==\"", pick(&mut rng, B64, 86)),
            24 => "keyboard-layout: us\nkey-repeat: 30".to_string(),
            25 => format!(
                "Downloaded serde v1.0.{} ({} KB)",
                rng.random_range(100..230),
                rng.random_range(10..900)
            ),
            26 => "aws_access_key_id = YOUR_ACCESS_KEY_ID".to_string(),
            27 => format!("etag: \"{}\"", pick(&mut rng, HEX, 32)),
            28 => "# set the token in your environment before running: export GH_TOKEN=..."
                .to_string(),
            _ => format!(
                "user {} logged in from 10.0.{}.{}",
                pick(&mut rng, b"abcdefghijklmnopqrstuvwxyz", 6),
                rng.random_range(0..255),
                rng.random_range(1..255)
            ),
        };
        line(&mut out, &text, "benign", "code_config_log");
    }
    out.flush().unwrap();
}
