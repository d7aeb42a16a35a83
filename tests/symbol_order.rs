//! `link/warden.order` (written by `benches/symbol-order.sh`, read by `build.rs`) is a list the
//! linker can use: one symbol a line, none twice, and a profile of the proxy, not of something
//! else.

use std::collections::HashSet;

#[test]
fn the_symbol_order_is_a_profile_of_the_proxy() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/link/warden.order");
    let text = std::fs::read_to_string(path).expect("link/warden.order exists");
    let names: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(names.len() > 500, "only {} functions listed", names.len());
    let mut seen = HashSet::new();
    for name in &names {
        assert!(
            !name.contains(char::is_whitespace) && !name.contains('#'),
            "not a symbol name: {name:?}"
        );
        assert!(seen.insert(*name), "listed twice: {name}");
    }
    // The request path's own code is there: the OpenAI handler, the guardians' scan, the
    // ledger's append, hyper's connection loop.
    for part in [
        "warden_proxy6openai",
        "warden_guardians",
        "warden_ledger",
        "hyper5proto",
    ] {
        assert!(
            names.iter().any(|n| n.contains(part)),
            "no function of {part} in the profile"
        );
    }
}
