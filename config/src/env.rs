//! Reading the environment through a seam tests can fake.

use std::collections::{BTreeMap, HashMap};

/// A source of environment variables.
///
/// [`ProcessEnv`] reads the process environment; maps (`BTreeMap` or `HashMap` of `String` to
/// `String`) stand in for it in tests so they neither race on nor leak into the real one.
pub trait Env {
    /// The value of `name`, if set (and valid UTF-8).
    fn var(&self, name: &str) -> Option<String>;
    /// Every variable, as `(name, value)`; variables that are not valid UTF-8 are left out.
    fn vars(&self) -> Vec<(String, String)>;
}

/// The environment of this process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn vars(&self) -> Vec<(String, String)> {
        std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .collect()
    }
}

impl Env for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_environments() {
        let hash: HashMap<String, String> = [("A".to_owned(), "1".to_owned())].into();
        assert_eq!(hash.var("A").as_deref(), Some("1"));
        assert_eq!(hash.var("B"), None);
        assert_eq!(hash.vars(), [("A".to_owned(), "1".to_owned())]);
        let tree: BTreeMap<String, String> = hash.into_iter().collect();
        assert_eq!(tree.var("A").as_deref(), Some("1"));
        assert_eq!(tree.vars().len(), 1);
    }
}
