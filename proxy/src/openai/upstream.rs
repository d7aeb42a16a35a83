//! The configured providers, with their keys read once at start-up. An agent never sees a
//! provider key: it authenticates with its Warden key, which is dropped before forwarding.

use std::time::Duration;

use warden_config::{glob_match, ApiKeySource, UpstreamConfig};

use super::inspect::Route;

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
    /// The governed routes' URLs, parsed once: parsing (with IDNA) on every call cost about 1%
    /// of a call's CPU. `None` for a base URL that does not parse; such a call is sent with the
    /// text URL as before, and fails the same way.
    endpoints: Option<Endpoints>,
    /// The host, for the upstream call's span.
    pub address: String,
}

#[derive(Clone)]
struct Endpoints {
    chat: reqwest::Url,
    completions: reqwest::Url,
    embeddings: reqwest::Url,
    responses: reqwest::Url,
}

impl Endpoints {
    fn parse(base_url: &str) -> Option<Endpoints> {
        let url = |route: Route| reqwest::Url::parse(&format!("{base_url}{}", route.path())).ok();
        Some(Endpoints {
            chat: url(Route::Chat)?,
            completions: url(Route::Completions)?,
            embeddings: url(Route::Embeddings)?,
            responses: url(Route::Responses)?,
        })
    }
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
        Ok(Upstream::new(
            c.name.clone(),
            c.base_url.clone(),
            authorization,
            c.models.clone(),
            c.timeout,
        ))
    }

    pub fn new(
        name: String,
        base_url: String,
        authorization: Option<reqwest::header::HeaderValue>,
        models: Vec<String>,
        timeout: Duration,
    ) -> Upstream {
        let address = reqwest::Url::parse(&base_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        Upstream {
            endpoints: Endpoints::parse(&base_url),
            address,
            name,
            base_url,
            authorization,
            models,
            timeout,
        }
    }

    /// The URL of `route` at this upstream, parsed at start-up when it could be.
    pub fn endpoint(&self, route: Route) -> Option<&reqwest::Url> {
        let e = self.endpoints.as_ref()?;
        Some(match route {
            Route::Chat => &e.chat,
            Route::Completions => &e.completions,
            Route::Embeddings => &e.embeddings,
            Route::Responses => &e.responses,
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
