//! The buckets of the local backend, and of the `local` fail mode: in this process, under one
//! lock, so a reservation across several buckets is all or nothing.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Applied, Bucket, Check, Kind, Refused, Seen};

/// A bucket that refills continuously at `capacity / 60 s` up to `capacity`.
#[derive(Clone, Copy, Debug)]
struct Level {
    capacity: f64,
    level: f64,
    at: Instant,
}

impl Level {
    fn new(capacity: u64, now: Instant) -> Level {
        Level {
            capacity: capacity as f64,
            level: capacity as f64,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + dt * self.capacity / 60.0).min(self.capacity);
        self.at = now;
    }

    fn full(&self) -> bool {
        self.level >= self.capacity
    }

    /// What the headers report: what remains, and the time until the bucket is full.
    fn seen(&self) -> Seen {
        let missing = (self.capacity - self.level).max(0.0);
        Seen {
            remaining: self.level.max(0.0).floor() as u64,
            reset: Duration::from_secs_f64(missing * 60.0 / self.capacity),
        }
    }
}

/// Above this many buckets, full ones (which carry no state) are dropped.
const PRUNE_ABOVE: usize = 100_000;

#[derive(Default)]
pub(super) struct LocalBuckets {
    map: Mutex<HashMap<(usize, Kind, String), Level>>,
}

impl LocalBuckets {
    /// Checks every bucket in order; takes the amounts from all of them or from none.
    pub(super) fn reserve(&self, buckets: &[Bucket<'_>]) -> Check {
        let now = Instant::now();
        let mut map = self.map.lock().expect("not poisoned");
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, l| {
                l.refill(now);
                !l.full()
            });
        }
        let mut seen = Vec::with_capacity(buckets.len());
        let mut refused = None;
        for (i, b) in buckets.iter().enumerate() {
            let level = map
                .entry(b.id())
                .or_insert_with(|| Level::new(b.capacity, now));
            level.refill(now);
            if refused.is_none() && level.level < b.amount as f64 {
                refused = Some(Refused {
                    bucket: i,
                    retry_after: (b.amount <= b.capacity).then(|| {
                        Duration::from_secs_f64(
                            (b.amount as f64 - level.level) * 60.0 / level.capacity,
                        )
                    }),
                });
            }
            seen.push(level.seen());
        }
        if refused.is_none() {
            for (b, s) in buckets.iter().zip(&mut seen) {
                let level = map.get_mut(&b.id()).expect("created above");
                level.level -= b.amount as f64;
                *s = level.seen();
            }
        }
        Check { refused, seen }
    }

    /// Adds `delta` tokens back (negative: takes more), never above a bucket's capacity.
    pub(super) fn adjust(&self, applied: &[Applied], delta: f64) {
        let now = Instant::now();
        let mut map = self.map.lock().expect("not poisoned");
        for a in applied {
            if let Some(l) = map.get_mut(&(a.rule, Kind::Tokens, a.subject.clone())) {
                l.refill(now);
                l.level = (l.level + delta).min(l.capacity);
            }
        }
    }
}
