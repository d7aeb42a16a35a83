//! Several packs evaluated together, and the live, hot-swappable set.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use crate::error::{EvalError, PackError};
use crate::eval::{evaluate_packs, Evaluation};
use crate::input::Input;
use crate::pack::{default_pack, Pack};
use crate::trust::{load_pack_file, TrustPolicy};

/// A set of packs with distinct ids, kept in id order. Evaluation: each pack that applies gives a
/// verdict; the strongest wins; conditions and fired rules of all packs are reported.
#[derive(Debug)]
pub struct PolicySet {
    packs: Vec<Arc<Pack>>,
    hash: String,
}

impl PolicySet {
    /// Builds a set.
    ///
    /// # Errors
    /// [`PackError::DuplicatePack`] if two packs share an id.
    pub fn new(packs: impl IntoIterator<Item = Pack>) -> Result<Self, PackError> {
        let mut packs: Vec<Arc<Pack>> = packs.into_iter().map(Arc::new).collect();
        packs.sort_by(|a, b| a.id.cmp(b.id));
        if let Some(w) = packs.windows(2).find(|w| w[0].id == w[1].id) {
            return Err(PackError::DuplicatePack {
                id: w[0].id.to_string(),
                first: w[0].source.clone(),
                second: w[1].source.clone(),
            });
        }
        // The set's hash: SHA-256 over the lines `<id> <version> <hash>\n`, in id order.
        let mut h = Sha256::new();
        for p in &packs {
            h.update(format!("{} {} {}\n", p.id, p.version, p.hash).as_bytes());
        }
        let hash = format!("sha256:{}", hex::encode(h.finalize()));
        Ok(PolicySet { packs, hash })
    }

    /// The set holding only the embedded default pack.
    #[must_use]
    pub fn with_default_pack() -> Self {
        PolicySet::new([default_pack()]).expect("one pack has no duplicate")
    }

    /// Loads every `*.yaml` / `*.yml` file of `dir` (not recursing, skipping `*.cases.yaml` /
    /// `*.cases.yml`), in file-name order. An empty directory gives an empty set, under which every
    /// input is allowed (add [`crate::default_pack`] if that is not wanted).
    ///
    /// # Errors
    /// [`PackError::Io`] if the directory cannot be read; otherwise every file's error together
    /// ([`PackError::Many`] when more than one), or a duplicate pack id.
    pub fn load_dir(dir: &Path, trust: &TrustPolicy) -> Result<Self, PackError> {
        let io = |source| PackError::Io {
            path: dir.to_owned(),
            source,
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        files.retain(|p| is_pack_file(p));
        files.sort();
        let mut packs = Vec::new();
        let mut errors = Vec::new();
        for f in &files {
            match load_pack_file(f, trust) {
                Ok(p) => packs.push(p),
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => PolicySet::new(packs),
            1 => Err(errors.remove(0)),
            _ => Err(PackError::Many(errors)),
        }
    }

    /// The packs, in id order.
    #[must_use]
    pub fn packs(&self) -> &[Arc<Pack>] {
        &self.packs
    }

    /// The pack with this id.
    #[must_use]
    pub fn pack(&self, id: &str) -> Option<&Pack> {
        self.packs.iter().find(|p| p.id == id).map(AsRef::as_ref)
    }

    /// `sha256:` over `<id> <version> <hash>\n` of each pack in id order: the set's policy version.
    #[must_use]
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Evaluates `input` against every pack.
    ///
    /// # Errors
    /// As [`crate::evaluate`].
    pub fn evaluate(&self, input: &Input) -> Result<Evaluation, EvalError> {
        evaluate_packs(&self.packs, input, &self.hash)
    }
}

fn is_pack_file(p: &Path) -> bool {
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    p.is_file()
        && (name.ends_with(".yaml") || name.ends_with(".yml"))
        && !name.ends_with(".cases.yaml")
        && !name.ends_with(".cases.yml")
}

/// The policy set in force, swapped atomically on reload: readers take a snapshot without
/// locking and keep it for as long as they evaluate; a reload never leaves a half-loaded set.
#[derive(Debug)]
pub struct LivePolicySet {
    current: ArcSwap<PolicySet>,
    dir: Option<PathBuf>,
    trust: TrustPolicy,
}

/// What a successful reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The hash of the set in force before.
    pub previous_hash: String,
    /// The hash of the set in force now.
    pub hash: String,
}

impl Reloaded {
    /// Whether the new set differs from the old one.
    #[must_use]
    pub fn changed(&self) -> bool {
        self.previous_hash != self.hash
    }
}

impl LivePolicySet {
    /// A live set that starts with `set` and has no directory to reload from.
    #[must_use]
    pub fn new(set: PolicySet) -> Self {
        LivePolicySet {
            current: ArcSwap::from_pointee(set),
            dir: None,
            trust: TrustPolicy::AllowUnsigned,
        }
    }

    /// Loads `dir` now and remembers it (and `trust`) for [`LivePolicySet::reload`].
    ///
    /// # Errors
    /// As [`PolicySet::load_dir`].
    pub fn from_dir(dir: &Path, trust: TrustPolicy) -> Result<Self, PackError> {
        let set = PolicySet::load_dir(dir, &trust)?;
        Ok(LivePolicySet {
            current: ArcSwap::from_pointee(set),
            dir: Some(dir.to_owned()),
            trust,
        })
    }

    /// The set in force: a cheap snapshot that stays valid across reloads.
    #[must_use]
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// Evaluates against the set in force.
    ///
    /// # Errors
    /// As [`PolicySet::evaluate`].
    pub fn evaluate(&self, input: &Input) -> Result<Evaluation, EvalError> {
        self.current.load().evaluate(input)
    }

    /// Installs the set `load` returns if it is `Ok`; on `Err` the set in force stays and the error
    /// is returned. The pure core of hot reload.
    ///
    /// # Errors
    /// Whatever `load` returned.
    pub fn reload_with(
        &self,
        load: impl FnOnce() -> Result<PolicySet, PackError>,
    ) -> Result<Reloaded, PackError> {
        let new = load()?;
        let hash = new.hash.clone();
        let old = self.current.swap(Arc::new(new));
        Ok(Reloaded {
            previous_hash: old.hash.clone(),
            hash,
        })
    }

    /// Reloads the directory given to [`LivePolicySet::from_dir`]; keeps the set in force if any
    /// file is invalid (or untrusted). Without a directory, nothing changes.
    ///
    /// # Errors
    /// As [`PolicySet::load_dir`].
    pub fn reload(&self) -> Result<Reloaded, PackError> {
        match &self.dir {
            Some(dir) => self.reload_with(|| PolicySet::load_dir(dir, &self.trust)),
            None => {
                let h = self.current.load().hash.clone();
                Ok(Reloaded {
                    previous_hash: h.clone(),
                    hash: h,
                })
            }
        }
    }
}

/// A background thread that polls the directory of a [`LivePolicySet`] and reloads it when a pack
/// file (or its signature) appears, disappears or changes size or modification time. Stops (and
/// joins) when dropped.
///
/// Polling rather than inotify/FSEvents: no dependency, the same on every platform, and it sees
/// Kubernetes ConfigMap updates (an atomic symlink swap that event-based watchers often miss). A
/// file caught half-written fails validation, so the old set stays until the next change.
#[derive(Debug)]
pub struct PolicyWatcher {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for PolicyWatcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

impl LivePolicySet {
    /// Starts polling the directory every `interval`; after each reload attempt (only when
    /// something changed), `on_reload` receives its result: log it, count it. Without a
    /// directory the watcher does nothing.
    pub fn watch<F>(self: &Arc<Self>, interval: std::time::Duration, on_reload: F) -> PolicyWatcher
    where
        F: Fn(Result<Reloaded, PackError>) + Send + 'static,
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let live = Arc::clone(self);
        let flag = Arc::clone(&stop);
        // Taken before returning, so that no change made after `watch` returns is missed.
        let initial = self.dir.as_deref().map(fingerprint);
        let handle = std::thread::Builder::new()
            .name("warden-policy-watch".to_owned())
            .spawn(move || {
                let (Some(dir), Some(mut seen)) = (live.dir.clone(), initial) else {
                    return;
                };
                while !flag.load(Ordering::Relaxed) {
                    std::thread::park_timeout(interval);
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    let now = fingerprint(&dir);
                    if now != seen {
                        seen = now;
                        on_reload(live.reload());
                    }
                }
            })
            .expect("spawn the policy watcher thread");
        PolicyWatcher {
            stop,
            handle: Some(handle),
        }
    }
}

/// (name, size, modified) of every pack and signature file, sorted; empty if unreadable.
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let s = p.to_string_lossy();
            is_pack_file(p) || s.ends_with(".yaml.sig") || s.ends_with(".yml.sig")
        })
        .map(|p| {
            // Follow symlinks (ConfigMaps): metadata of the target.
            let md = std::fs::metadata(&p).ok();
            let size = md.as_ref().map_or(0, std::fs::Metadata::len);
            let modified = md.and_then(|m| m.modified().ok());
            (p, size, modified)
        })
        .collect();
    v.sort();
    v
}
