//! The crate's one error type.

/// Why a [`crate::Guardians`] could not be built.
///
/// Scanning itself never fails: every error is raised once, when the configuration and the rule
/// sets are compiled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardianError {
    /// The configuration is inconsistent (e.g. `redaction.style: hash` without a key).
    #[error("invalid guardian configuration: {0}")]
    Config(String),
    /// The embedded gitleaks rule file could not be parsed.
    #[error("cannot parse the secrets rule set: {0}")]
    Rules(#[from] toml::de::Error),
    /// A pattern (built-in, from the rule set, or from the configuration) does not compile.
    #[error("pattern {id} does not compile: {source}")]
    Pattern {
        /// The rule or detector the pattern belongs to.
        id: String,
        /// The regex error.
        #[source]
        source: Box<regex::Error>,
    },
    /// The keyword prefilter could not be built.
    #[error("cannot build keyword prefilter: {0}")]
    Prefilter(#[from] aho_corasick::BuildError),
}

impl GuardianError {
    pub(crate) fn pattern(id: impl Into<String>, source: regex::Error) -> Self {
        GuardianError::Pattern {
            id: id.into(),
            source: Box::new(source),
        }
    }
}
