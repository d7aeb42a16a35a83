//! Handing freed heap memory back to the operating system.
//!
//! glibc keeps freed memory in each thread's arena and returns only the top of an arena on its
//! own. Start-up builds large transient structures (the tokenizer's vocabulary is decoded
//! through hash maps several times its final size), and the ledger writer, the syncer and the
//! runtime free each other's allocations under load, so whole free pages stay resident for
//! good: `malloc_trim` gives them back (about 11 MiB at start-up, measured).

/// How often free pages are handed back while serving.
pub const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Hands every whole free page of every arena back to the operating system.
pub fn release_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Asks the kernel to reclaim the resident pages of the executable's read-only mappings (code,
/// constants and the embedded vocabularies, corpus and rules), and returns how many bytes of
/// mappings it was asked about.
///
/// Start-up runs code and reads data that serving never touches again (configuration, migrations,
/// the tokenizer's embedded vocabulary, which is decoded once into the heap), and those pages
/// stay resident in the process, about 5 MiB of `RssFile` under load (BENCHMARKS.md). What the
/// request path needs comes back at its first use, from the page cache or the file. The advice
/// is `MADV_PAGEOUT`, which never discards content (a page someone changed would go to swap or
/// stay), and it is given only for mappings that are not writable.
pub fn release_startup_pages() -> std::io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        let exe = std::fs::read_link("/proc/self/exe")?;
        let exe = exe.to_string_lossy();
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        let mut advised = 0;
        for line in maps.lines() {
            let mut fields = line.split_whitespace();
            let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
                continue;
            };
            // offset, device, inode, then the path (which may hold spaces).
            let path = fields.skip(3).collect::<Vec<_>>().join(" ");
            let path = path.strip_suffix(" (deleted)").unwrap_or(&path);
            if path != exe || perms.as_bytes().get(1) != Some(&b'-') {
                continue;
            }
            let Some((start, end)) = range.split_once('-') else {
                continue;
            };
            let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            ) else {
                continue;
            };
            // SAFETY: the range is one of this process's own mappings, page-aligned as the kernel
            // reports it, and MADV_PAGEOUT only moves pages out: their content stays readable.
            let rc = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT)
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            advised += end - start;
        }
        Ok(advised)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(0)
}

/// Releases free pages now and then every [`TRIM_EVERY`], for as long as the runtime runs. The
/// first round also hands back the executable's start-up pages ([`release_startup_pages`]).
pub fn spawn_trim() {
    release_free();
    match release_startup_pages() {
        Ok(bytes) => tracing::debug!(bytes, "executable's start-up pages handed back"),
        Err(e) => tracing::debug!(error = %e, "executable's start-up pages kept (madvise failed)"),
    }
    tokio::spawn(async {
        let mut every = tokio::time::interval(TRIM_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            tokio::task::spawn_blocking(release_free);
        }
    });
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    fn rss_file_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn startup_pages_go_back_and_the_code_still_runs() {
        let before = rss_file_kib();
        let advised = super::release_startup_pages().expect("madvise(MADV_PAGEOUT) succeeds");
        let after = rss_file_kib();
        assert!(
            advised > 1 << 20,
            "the executable's read-only mappings were found: {advised}"
        );
        assert!(after < before, "RssFile fell: {before} KiB -> {after} KiB");
        // The code and constants paged out come back when used.
        let v: serde_json::Value = serde_json::from_str(r#"{"a": [1, 2, 3]}"#).unwrap();
        assert_eq!(v["a"][2], 3);
    }
}
