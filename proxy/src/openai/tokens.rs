//! Token counts for limits and policy, with the model's own tokenizer: OpenAI's encodings are
//! embedded in the binary (the `tiktoken` crate's vocabularies; `o200k_base` and `cl100k_base`
//! counted by [`Bpe`], which holds them in a third of the memory); other models use a local
//! Hugging Face `tokenizer.json` named in the configuration. A model neither covers is estimated
//! with `o200k_base` and the count is marked as an estimate.

use std::sync::OnceLock;

use serde_json::Value;
use warden_config::{glob_match, TokenizerConfig};

use super::bpe::{Bpe, BpeError};

/// How a count was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Counted {
    /// With the model's own encoding.
    Exact,
    /// With a stand-in encoding: close, not exact.
    Estimate,
}

enum Engine<'a> {
    Compact(&'a Bpe),
    Tiktoken(&'static tiktoken::CoreBpe),
    HuggingFace(&'a tokenizers::Tokenizer),
}

/// The tokenizers, chosen per model.
pub struct Tokenizers {
    local: Vec<(Vec<String>, tokenizers::Tokenizer)>,
    /// Current OpenAI models, and the stand-in for unknown ones: read at start-up.
    o200k: Bpe,
    /// GPT-4 and GPT-3.5: read when such a model is first called.
    cl100k: OnceLock<Bpe>,
}

/// Why a configured tokenizer could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer {path}: {message}")]
    File { path: String, message: String },
    #[error("embedded encoding: {0}")]
    Embedded(#[from] BpeError),
}

impl Tokenizers {
    pub fn new(config: &[TokenizerConfig]) -> Result<Tokenizers, TokenizerError> {
        let mut local = Vec::new();
        for t in config {
            let tok =
                tokenizers::Tokenizer::from_file(&t.file).map_err(|e| TokenizerError::File {
                    path: t.file.display().to_string(),
                    message: e.to_string(),
                })?;
            local.push((t.models.clone(), tok));
        }
        Ok(Tokenizers {
            local,
            o200k: Bpe::o200k_base()?,
            cl100k: OnceLock::new(),
        })
    }

    fn engine(&self, model: &str) -> (Engine<'_>, Counted) {
        if let Some((_, t)) = self
            .local
            .iter()
            .find(|(globs, _)| globs.iter().any(|g| glob_match(g, model)))
        {
            return (Engine::HuggingFace(t), Counted::Exact);
        }
        let stand_in = (Engine::Compact(&self.o200k), Counted::Estimate);
        match tiktoken::model_to_encoding(model) {
            Some("o200k_base") => (Engine::Compact(&self.o200k), Counted::Exact),
            Some("cl100k_base") => (Engine::Compact(self.cl100k()), Counted::Exact),
            Some(name) => tiktoken::get_encoding(name)
                .map_or(stand_in, |e| (Engine::Tiktoken(e), Counted::Exact)),
            None => stand_in,
        }
    }

    fn cl100k(&self) -> &Bpe {
        // The same code as `o200k_base`, which start-up has already built from the same crate:
        // it cannot fail here unless the crate's vocabulary stopped being byte-level.
        self.cl100k
            .get_or_init(|| Bpe::cl100k_base().expect("cl100k_base is a byte-level encoding"))
    }

    /// Tokens of `texts` as the model would see them, plus OpenAI's per-message framing
    /// (3 per message, 3 to prime the reply) when `messages` is the count of chat messages.
    pub fn count(&self, model: &str, texts: &[&str], messages: usize) -> (u64, Counted) {
        let (engine, how) = self.engine(model);
        let mut n: u64 = 0;
        for t in texts {
            n += match &engine {
                Engine::Compact(e) => e.count(t) as u64,
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
