//! Defaults < file < environment, collecting every problem on the way.

use std::path::{Path, PathBuf};

use saphyr::{LoadableYamlNode, MarkedYamlOwned, Marker, ScalarOwned, YamlDataOwned};

use crate::env::Env;
use crate::error::{ConfigError, Problem, ProblemOrigin, Problems};
use crate::model::Config;
use crate::schema::{self, Value};

/// Loads the configuration: the defaults, overridden by the file, overridden by `WARDEN_*`
/// environment variables.
///
/// The file is `path` if given, else the one named by `WARDEN_CONFIG` if that is set and
/// non-empty, else there is none and the defaults plus the environment make the configuration.
///
/// # Errors
/// [`ConfigError::Read`] if the file cannot be read (a file that was asked for but is missing is an
/// error, not an empty configuration); [`ConfigError::Invalid`] listing every problem found in the
/// file and the environment together.
pub fn load(path: Option<&Path>, env: &impl Env) -> Result<Config, ConfigError> {
    let from_env = env
        .var("WARDEN_CONFIG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let path = path.or(from_env.as_deref());

    let mut config = Config::default();
    let mut problems = Vec::new();
    if let Some(path) = path {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        apply_file(&mut config, path, &text, &mut problems);
    }
    apply_env(&mut config, env, &mut problems);

    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(Problems(problems)))
    }
}

/// Checks a configuration file as `warden config check FILE` does: the same as
/// `load(Some(path), env)`, so the environment's overrides are checked too.
///
/// # Errors
/// As [`load`].
pub fn check(path: &Path, env: &impl Env) -> Result<Config, ConfigError> {
    load(Some(path), env)
}

/// Applies a YAML document's settings to `config`, adding a problem for each bad one.
fn apply_file(config: &mut Config, file: &Path, text: &str, problems: &mut Vec<Problem>) {
    let mut walker = FileWalker {
        config,
        file,
        problems,
    };
    let docs = match MarkedYamlOwned::load_from_str(text) {
        Ok(docs) => docs,
        Err(e) => {
            walker.problem(e.marker(), "", format!("invalid YAML: {}", e.info()));
            return;
        }
    };
    if let Some(extra) = docs.get(1) {
        walker.problem(
            &extra.span.start,
            "",
            format!(
                "expected a single YAML document, found {} documents",
                docs.len()
            ),
        );
    }
    let Some(doc) = docs.first() else {
        return; // An empty file (or only comments): all defaults.
    };
    match &schema::untag(doc).data {
        YamlDataOwned::Value(ScalarOwned::Null) => {}
        YamlDataOwned::Mapping(_) => walker.walk(doc, ""),
        _ => walker.problem(
            &doc.span.start,
            "",
            format!(
                "expected a mapping of settings at the top level, found {}",
                schema::describe(doc)
            ),
        ),
    }
}

struct FileWalker<'a> {
    config: &'a mut Config,
    file: &'a Path,
    problems: &'a mut Vec<Problem>,
}

impl FileWalker<'_> {
    /// Applies the mapping `node`, found at `section` (`""` for the top level).
    fn walk(&mut self, node: &MarkedYamlOwned, section: &str) {
        let YamlDataOwned::Mapping(map) = &schema::untag(node).data else {
            return;
        };
        for (key, value) in map {
            let name = match &schema::untag(key).data {
                YamlDataOwned::Value(ScalarOwned::String(s)) => s.as_str(),
                _ => {
                    let found = schema::describe(key);
                    self.problem(
                        &key.span.start,
                        section,
                        format!("expected a field name, found {found}"),
                    );
                    continue;
                }
            };
            let path = if section.is_empty() {
                name.to_owned()
            } else {
                format!("{section}.{name}")
            };
            let mapping = matches!(&schema::untag(value).data, YamlDataOwned::Mapping(_));
            if mapping && schema::is_section(&path) {
                // A section that is also a field (`limits`) takes a mapping as the section and
                // anything else as the field's short form.
                self.walk(value, &path);
            } else if let Some(field) = schema::field(&path) {
                if let Err(issues) = (field.set)(self.config, Value::Yaml(value)) {
                    for issue in issues.0 {
                        let at = issue.at.unwrap_or(value.span.start);
                        self.problem(&at, &format!("{path}{}", issue.subpath), issue.message);
                    }
                }
            } else if schema::is_section(&path) {
                match &schema::untag(value).data {
                    // `server:` with nothing under it: keep the defaults.
                    YamlDataOwned::Value(ScalarOwned::Null) => {}
                    _ => {
                        let found = schema::describe(value);
                        self.problem(
                            &value.span.start,
                            &path,
                            format!("expected a mapping, found {found}"),
                        );
                    }
                }
            } else {
                self.problem(&key.span.start, &path, schema::unknown_field(section, name));
            }
        }
    }

    fn problem(&mut self, at: &Marker, path: &str, message: String) {
        self.problems.push(Problem {
            path: path.to_owned(),
            message,
            origin: ProblemOrigin::File {
                file: self.file.to_owned(),
                line: at.line(),
                column: at.col() + 1,
            },
        });
    }
}

/// Applies `WARDEN_<SECTION>__<FIELD>` and `WARDEN_<FIELD>` variables (names case-insensitive).
///
/// A variable naming a known section but an unknown field is a problem (it is almost certainly a
/// typo); every other `WARDEN_*` variable (`WARDEN_CONFIG`, `WARDEN_API_KEY`, ...) belongs to
/// someone else and is ignored.
fn apply_env(config: &mut Config, env: &impl Env, problems: &mut Vec<Problem>) {
    let mut vars = env.vars();
    vars.sort();
    for (var, value) in vars {
        const PREFIX: &str = "WARDEN_";
        let Some(rest) = var
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .and_then(|_| var.get(PREFIX.len()..))
        else {
            continue;
        };
        // `LEDGER__BATCH_MAX` -> `ledger.batch_max`.
        let path = rest.to_ascii_lowercase().replace("__", ".");
        let problem = |path: &str, message: String| Problem {
            path: path.to_owned(),
            message,
            origin: ProblemOrigin::Env { var: var.clone() },
        };
        if let Some(field) = schema::field(&path) {
            if let Err(issues) = (field.set)(config, Value::Env(&value)) {
                for issue in issues.0 {
                    problems.push(problem(&format!("{path}{}", issue.subpath), issue.message));
                }
            }
        } else if let Some((section, name)) = path.split_once('.') {
            if schema::is_section(section) {
                problems.push(problem(&path, schema::unknown_field(section, name)));
            }
        }
    }
}
