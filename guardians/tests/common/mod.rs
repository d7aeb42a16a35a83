//! Shared engine for the integration tests: compiled once per test binary.
#![allow(dead_code)]

use std::sync::OnceLock;

use warden_guardians::{GuardianConfig, Guardians};

pub fn guardians() -> &'static Guardians {
    static G: OnceLock<Guardians> = OnceLock::new();
    G.get_or_init(|| Guardians::new(GuardianConfig::default()).expect("default config compiles"))
}
