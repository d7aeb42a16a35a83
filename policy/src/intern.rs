//! Process-wide interning of the strings and values of loaded packs.
//!
//! An evaluation records, for every condition, the pack id, rule id, condition id, label, field
//! and threshold. Interning them as `&'static` lets the record borrow them: no allocation and no
//! reference counting per condition, which is most of what an evaluation would otherwise cost.
//! The price: every distinct string or threshold ever loaded stays in memory for the life of the
//! process. Reloading the same packs adds nothing; only new ids, labels and values do, so the
//! memory is bounded by how much distinct policy text a process ever loads.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// The interned copy of `s`.
pub(crate) fn intern(s: &str) -> &'static str {
    static SET: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = SET
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(&found) = set.get(s) {
        return found;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

/// The interned copy of `v` (values are equal when their JSON text is).
pub(crate) fn intern_value(v: Value) -> &'static Value {
    static MAP: OnceLock<Mutex<HashMap<String, &'static Value>>> = OnceLock::new();
    let key = v.to_string();
    let mut map = MAP
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    map.entry(key).or_insert_with(|| Box::leak(Box::new(v)))
}
