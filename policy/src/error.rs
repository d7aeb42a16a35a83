//! The crate's errors: [`PackError`] for everything that happens before evaluation (reading,
//! parsing, validating, trusting and assembling packs), [`EvalError`] for the few things that can go
//! wrong while evaluating one input.

use std::fmt;
use std::path::PathBuf;

/// One problem found in a pack (or cases) file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file's name as given to the loader (a path, or a name such as `<default>`).
    pub source: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Where in the document: `rules[0].when.all[1].op`; empty for the whole document.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.source, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// The problems of one file, in document order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Why a pack, a signature, a policy set or a cases file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The document is not valid YAML or not a valid pack / cases file; every problem found.
    #[error("{0}")]
    Invalid(Problems),
    /// The trust policy requires a signature and there is no `<file>.sig` beside the pack.
    #[error("{}: unsigned pack refused: the trust policy requires a signature in {}", path.display(), sig_path.display())]
    Unsigned {
        /// The pack file.
        path: PathBuf,
        /// Where its signature was looked for.
        sig_path: PathBuf,
    },
    /// A signature file exists but does not verify against any trusted key.
    #[error("{}: bad signature: {reason}", path.display())]
    BadSignature {
        /// The pack file.
        path: PathBuf,
        /// What did not verify.
        reason: String,
    },
    /// A public or private key could not be read.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// Two packs of one policy set have the same id.
    #[error("duplicate pack id {id:?}: in {first} and {second}")]
    DuplicatePack {
        /// The pack id.
        id: String,
        /// Where it was first loaded from.
        first: String,
        /// Where it was loaded from again.
        second: String,
    },
    /// Several files failed (loading a directory): every error, in file-name order.
    #[error("{}", display_many(.0))]
    Many(Vec<PackError>),
}

fn display_many(errors: &[PackError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl PackError {
    /// Every [`Problem`] with a position that this error carries (flattening [`PackError::Many`]).
    #[must_use]
    pub fn problems(&self) -> Vec<&Problem> {
        match self {
            PackError::Invalid(p) => p.0.iter().collect(),
            PackError::Many(all) => all.iter().flat_map(PackError::problems).collect(),
            _ => Vec::new(),
        }
    }
}

/// Why one input could not be evaluated. The REST layer maps both variants to 422: the input,
/// not the policy, is at fault (or the expression met data it cannot handle).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A condition compares a value of one type against a payload value of another, e.g. `>` with a
    /// number against a string.
    #[error("field {field:?} (rule {rule:?}): expected {expected}, found {found}")]
    TypeMismatch {
        /// The dotted path into the input's context.
        field: String,
        /// The rule whose condition failed.
        rule: String,
        /// What the condition needs: `number`, `string`, `boolean`.
        expected: &'static str,
        /// What the payload holds there: `string`, `number`, `boolean`, `array`, `object`.
        found: &'static str,
    },
    /// A CEL expression failed at run time for a reason other than missing data, or did not return
    /// a boolean.
    #[error("expression {condition:?} (rule {rule:?}): {message}")]
    Expression {
        /// The rule.
        rule: String,
        /// The condition id.
        condition: String,
        /// What went wrong.
        message: String,
    },
}
