//! Lays out the release binary's code so that what a proxied request runs sits together.
//!
//! Why: the code a request runs is about 2 MiB, but spread over the 22 MB of `.text` it kept
//! 12 MiB of the executable resident under load, because the kernel maps (and reads ahead)
//! whole neighbourhoods of pages around each one touched. `link/warden.order` lists those
//! functions, hottest first (`benches/symbol-order.sh` writes it from a profile of the proxy
//! under load); LLD places them first, in that order. Names it does not find (a dependency or
//! the compiler changed since the list was made) are skipped, so a stale list costs memory,
//! never correctness. BENCHMARKS.md, proxy, "Ninth pass", has the figures.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=link/warden.order");
    println!("cargo:rerun-if-env-changed=WARDEN_SYMBOL_ORDER");
    if env::var("WARDEN_SYMBOL_ORDER").as_deref() == Ok("off") {
        return;
    }
    // Only release builds (the list's names are a release build's), and only where the linker
    // is known to be LLD, which reads the list: Rust's own on x86_64 Linux since 1.90, unless
    // another linker was chosen (`target.<triple>.linker` sets RUSTC_LINKER; a `-C linker*`
    // flag shows in the encoded flags).
    let target = env::var("TARGET").unwrap_or_default();
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if target != "x86_64-unknown-linux-gnu"
        || env::var("PROFILE").as_deref() != Ok("release")
        || env::var_os("RUSTC_LINKER").is_some()
        || flags.contains("linker")
    {
        return;
    }
    let Some(dir) = env::var_os("CARGO_MANIFEST_DIR") else {
        return;
    };
    let order = Path::new(&dir).join("link").join("warden.order");
    let Some(order) = order.to_str() else {
        return;
    };
    // `-Wl,` splits at commas: a checkout path with one cannot be passed this way.
    if order.contains(',') || !Path::new(order).is_file() {
        return;
    }
    println!("cargo:rustc-link-arg-bin=warden=-Wl,--symbol-ordering-file={order}");
    println!("cargo:rustc-link-arg-bin=warden=-Wl,--no-warn-symbol-ordering");
}
