//! The configured providers, with their keys read once at start-up. An agent never sees a
//! provider key: it authenticates with its Warden key, which is dropped before forwarding.

use std::time::Duration;

use warden_config::{glob_match, ApiKeySource, UpstreamConfig};

/// A provider ready to be called.
#[derive(Clone)]
pub struct Upstream {
    pub name: String,
    /// Without a trailing slash; paths such as `/chat/completions` are appended.
    pub base_url: String,
    /// `Bearer ...`, if the provider needs a key.
    pub authorization: Option<reqwest::header::HeaderValue>,
    pub models: Vec<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("models", &self.models)
            .finish_non_exhaustive()
    }
}

/// Why an upstream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream {upstream}: environment variable {var} is not set")]
    MissingEnv { upstream: String, var: String },
    #[error("upstream {upstream}: cannot read key file {path}: {source}")]
    KeyFile {
        upstream: String,
        path: String,
        source: std::io::Error,
    },
    #[error("upstream {upstream}: the key is empty or not a valid header value")]
    BadKey { upstream: String },
}

impl Upstream {
    pub fn from_config(c: &UpstreamConfig) -> Result<Upstream, UpstreamError> {
        let key = match &c.api_key {
            ApiKeySource::None => None,
            ApiKeySource::Env(var) => {
                Some(std::env::var(var).map_err(|_| UpstreamError::MissingEnv {
                    upstream: c.name.clone(),
                    var: var.clone(),
                })?)
            }
            ApiKeySource::File(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| UpstreamError::KeyFile {
                        upstream: c.name.clone(),
                        path: path.display().to_string(),
                        source,
                    })?,
                )
            }
        };
        let authorization = match key.as_deref().map(str::trim) {
            None => None,
            Some(k) => {
                let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {k}"))
                    .ok()
                    .filter(|_| !k.is_empty())
                    .ok_or_else(|| UpstreamError::BadKey {
                        upstream: c.name.clone(),
                    })?;
                v.set_sensitive(true);
                Some(v)
            }
        };
        Ok(Upstream {
            name: c.name.clone(),
            base_url: c.base_url.clone(),
            authorization,
            models: c.models.clone(),
            timeout: c.timeout,
        })
    }

    pub fn serves(&self, model: &str) -> bool {
        self.models.iter().any(|g| glob_match(g, model))
    }
}

/// The first upstream serving `model`.
pub fn route<'a>(upstreams: &'a [Upstream], model: &str) -> Option<&'a Upstream> {
    upstreams.iter().find(|u| u.serves(model))
}
