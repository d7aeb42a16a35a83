//! Token counts for limits and policy, with the model's own tokenizer: OpenAI's encodings are
//! embedded in the binary (the `tiktoken` crate); other models use a local Hugging Face
//! `tokenizer.json` named in the configuration. A model neither covers is estimated with
//! `o200k_base` and the count is marked as an estimate.

use std::sync::Arc;

use serde_json::Value;
use warden_config::{glob_match, TokenizerConfig};

/// How a count was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Counted {
    /// With the model's own encoding.
    Exact,
    /// With a stand-in encoding: close, not exact.
    Estimate,
}

enum Engine {
    Tiktoken(&'static tiktoken::CoreBpe),
    HuggingFace(Arc<tokenizers::Tokenizer>),
}

/// The tokenizers, chosen per model.
pub struct Tokenizers {
    local: Vec<(Vec<String>, Arc<tokenizers::Tokenizer>)>,
}

/// Why a configured tokenizer could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("tokenizer {path}: {message}")]
pub struct TokenizerError {
    pub path: String,
    pub message: String,
}

impl Tokenizers {
    pub fn new(config: &[TokenizerConfig]) -> Result<Tokenizers, TokenizerError> {
        let mut local = Vec::new();
        for t in config {
            let tok = tokenizers::Tokenizer::from_file(&t.file).map_err(|e| TokenizerError {
                path: t.file.display().to_string(),
                message: e.to_string(),
            })?;
            local.push((t.models.clone(), Arc::new(tok)));
        }
        Ok(Tokenizers { local })
    }

    fn engine(&self, model: &str) -> (Engine, Counted) {
        if let Some((_, t)) = self
            .local
            .iter()
            .find(|(globs, _)| globs.iter().any(|g| glob_match(g, model)))
        {
            return (Engine::HuggingFace(t.clone()), Counted::Exact);
        }
        match tiktoken::encoding_for_model(model) {
            Some(e) => (Engine::Tiktoken(e), Counted::Exact),
            None => (
                Engine::Tiktoken(
                    tiktoken::get_encoding("o200k_base").expect("o200k_base is embedded"),
                ),
                Counted::Estimate,
            ),
        }
    }

    /// Tokens of `texts` as the model would see them, plus OpenAI's per-message framing
    /// (3 per message, 3 to prime the reply) when `messages` is the count of chat messages.
    pub fn count(&self, model: &str, texts: &[&str], messages: usize) -> (u64, Counted) {
        let (engine, how) = self.engine(model);
        let mut n: u64 = 0;
        for t in texts {
            n += match &engine {
                Engine::Tiktoken(e) => e.count(t) as u64,
                Engine::HuggingFace(tok) => tok
                    .encode(*t, false)
                    .map(|e| e.len() as u64)
                    .unwrap_or_else(|_| (t.len() as u64).div_ceil(4)),
            };
        }
        if messages > 0 {
            n += 3 * messages as u64 + 3;
        }
        (n, how)
    }
}

/// The completion budget a request asks for, if it names one.
pub fn max_output(body: &Value) -> Option<u64> {
    ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| body.get(*k).and_then(Value::as_u64))
}

impl Tokenizers {
    /// Decompresses `o200k_base` (current OpenAI models, and the stand-in for unknown ones)
    /// now rather than on the first call. It costs about 23 MiB of memory; `cl100k_base`
    /// (7.5 MiB, GPT-4 and GPT-3.5) is loaded only when such a model is first called.
    pub fn warm_up(&self) {
        let _ = tiktoken::get_encoding("o200k_base");
    }
}
