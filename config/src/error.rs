//! What can go wrong while loading, with every problem kept and positioned.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Loading the configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: io::Error,
    },
    /// The file or the environment holds one or more invalid settings; all of them are listed.
    #[error("invalid configuration ({count}):\n{list}", count = .0.count(), list = .0)]
    Invalid(Problems),
}

/// Every problem found in one load, in the order found: the file in document order, then the
/// environment sorted by variable name. Displays one problem per line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems(
    /// The problems, never empty in a [`ConfigError::Invalid`].
    pub Vec<Problem>,
);

impl Problems {
    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// "1 problem", "3 problems".
    fn count(&self) -> String {
        match self.0.len() {
            1 => "1 problem".to_owned(),
            n => format!("{n} problems"),
        }
    }

    /// The problems, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a Problem;
    type IntoIter = std::slice::Iter<'a, Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// One invalid setting, or a file that is not valid YAML.
///
/// Displays as `warden.yaml:4:14: ledger.batch_max: expected an integer from 1 to 65536, found
/// string "lots"` or `env WARDEN_LEDGER__BATCH_MAX: ledger.batch_max: ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the setting, e.g. `ledger.batch_max`; empty when the problem concerns the
    /// whole document (a YAML syntax error, a top level that is not a mapping).
    pub path: String,
    /// What was expected and what was found.
    pub message: String,
    /// Where the offending value came from.
    pub origin: ProblemOrigin,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.origin)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Where a problem's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemOrigin {
    /// A position in the configuration file; line and column start at 1.
    File {
        /// The file as it was named to [`crate::load`].
        file: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column in characters, from 1.
        column: usize,
    },
    /// An environment variable.
    Env {
        /// The variable's name as it was set.
        var: String,
    },
}

impl fmt::Display for ProblemOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProblemOrigin::File { file, line, column } => {
                write!(f, "{}:{line}:{column}", file.display())
            }
            ProblemOrigin::Env { var } => write!(f, "env {var}"),
        }
    }
}
