//! Whether a parsed phone number is valid, answered as `phonenumber::is_valid` answers it, with
//! the metadata's patterns compiled once.
//!
//! Why not `phonenumber::is_valid` itself: every pattern match it makes looks the compiled regex
//! up in one process-wide LRU cache of 100 entries, under a mutex, keyed by the pattern's source
//! text, which is hashed (SipHash) on each lookup. The sources are hundreds of bytes long: about
//! 4,300 instructions a match, 15 matches a number, so a third of the PII detector's time on the
//! bench's mixed text (callgrind). Eleven default regions of about ten patterns each also
//! overflow the 100 entries, and an evicted pattern is compiled again at its next use. Here the
//! compiled regexes are keyed by the address of their source in the static metadata, which does
//! not move, and kept for good, up to [`MAX_COMPILED`] of them.

use std::collections::HashMap;
use std::sync::RwLock;

use phonenumber::metadata::{Descriptor, Metadata, DATABASE};
use phonenumber::{PhoneNumber, Type};
use regex::{Regex, RegexBuilder};

/// How many patterns are kept compiled: a region has a general pattern and up to ten typed
/// ones, so this holds about 25 regions' (the eleven default ones take about 110), at 6.8 KB a
/// pattern on average (`meta::Regex::memory_usage` over the metadata's 1,379), 1.7 MB at most.
/// Past it, the crate answers (through its own cache).
const MAX_COMPILED: usize = 256;

/// The types a number can be of besides `Unknown`: a number is valid when its region's general
/// pattern and one of these match (`phonenumber::validator::number_type`).
const TYPES: [Type; 10] = [
    Type::PremiumRate,
    Type::TollFree,
    Type::SharedCost,
    Type::Voip,
    Type::PersonalNumber,
    Type::Pager,
    Type::Uan,
    Type::Voicemail,
    Type::FixedLine,
    Type::Mobile,
];

pub(crate) struct Validator {
    compiled: RwLock<HashMap<usize, Regex>>,
    /// [`MAX_COMPILED`], but for the test that compiles every pattern.
    cap: usize,
}

impl Default for Validator {
    fn default() -> Self {
        Validator {
            compiled: RwLock::default(),
            cap: MAX_COMPILED,
        }
    }
}

impl Validator {
    /// `phonenumber::is_valid(number)`.
    pub(crate) fn is_valid(&self, number: &PhoneNumber) -> bool {
        let code = number.country().code();
        let national = number.national().to_string();
        self.source(code, &national)
            .is_some_and(|meta| self.has_type(meta, &national))
    }

    /// The metadata a number of country `code` is checked against
    /// (`phonenumber::validator::source_for`): the only region of the code, else the first whose
    /// leading digits start the number, or, for a region without leading digits, that the
    /// number is valid in.
    fn source(&self, code: u16, national: &str) -> Option<&'static Metadata> {
        let db = &*DATABASE;
        let regions = db.region(&code)?;
        if let [only] = regions[..] {
            return if only == "001" {
                db.by_code(&code)?.into_iter().next()
            } else {
                only.parse::<phonenumber::country::Id>().ok()?;
                db.by_id(only)
            };
        }
        regions.into_iter().find_map(|region| {
            let meta = db.by_id(region)?;
            let here = match meta.leading_digits() {
                Some(p) => self.starts_with_match(p.as_str(), national, || {
                    p.find(national).is_some_and(|m| m.start() == 0)
                }),
                None => self.has_type(meta, national),
            };
            here.then_some(meta)
        })
    }

    /// Whether `national` is of a known type in `meta`'s region.
    fn has_type(&self, meta: &'static Metadata, national: &str) -> bool {
        let d = meta.descriptors();
        self.matches(d.general(), national)
            && TYPES
                .iter()
                .any(|t| d.get(*t).is_some_and(|x| self.matches(x, national)))
    }

    /// `Descriptor::is_match`: a possible length, and the pattern's leftmost match at the start.
    fn matches(&self, d: &'static Descriptor, value: &str) -> bool {
        let lengths = d.possible_length();
        if !lengths.is_empty() && !lengths.contains(&(value.len() as u16)) {
            return false;
        }
        self.starts_with_match(d.national_number().as_str(), value, || d.is_match(value))
    }

    /// Whether the leftmost match of `source` (a pattern of the static metadata) in `value`
    /// starts it; `crate_answer` asks the crate, for a pattern this cannot compile.
    fn starts_with_match(
        &self,
        source: &'static str,
        value: &str,
        crate_answer: impl FnOnce() -> bool,
    ) -> bool {
        let key = source.as_ptr() as usize;
        let at_start = |re: &Regex| re.find(value).is_some_and(|m| m.start() == 0);
        {
            let map = self.read();
            if let Some(re) = map.get(&key) {
                return at_start(re);
            }
            if map.len() >= self.cap {
                return crate_answer();
            }
        }
        // As the metadata loader builds them, but without Unicode: `\d` is then `[0-9]`, not
        // every script's digits (55 KB a pattern on average instead of 6.8), which is the same
        // for the ASCII digits of a national number.
        let Ok(re) = RegexBuilder::new(source)
            .ignore_whitespace(true)
            .unicode(false)
            .build()
        else {
            return crate_answer();
        };
        let found = at_start(&re);
        let mut map = self.compiled.write().unwrap_or_else(|e| e.into_inner());
        if map.len() < self.cap {
            map.insert(key, re);
        }
        found
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<usize, Regex>> {
        self.compiled.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Same answers as the crate on numbers of every region: each region's examples (valid),
    /// and random digit strings of the region's lengths (mostly invalid), parsed both as
    /// international numbers and in the region.
    #[test]
    fn answers_as_phonenumber_does() {
        // Every pattern compiled here, none left to the crate.
        let v = Validator {
            cap: usize::MAX,
            ..Validator::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (mut valid, mut checked) = (0, 0);
        for meta in DATABASE.iter() {
            let code = meta.country_code();
            let mut nationals: Vec<String> = TYPES
                .iter()
                .filter_map(|t| meta.descriptors().get(*t)?.example().map(String::from))
                .collect();
            for _ in 0..5 {
                let len = rng.random_range(4..=13);
                let mut s: String = (0..len)
                    .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                    .collect();
                if let Some(e) = nationals.first() {
                    // Share a prefix with an example, so that some are valid.
                    let keep = rng.random_range(0..=e.len().min(s.len()));
                    s.replace_range(..keep, &e[..keep]);
                }
                nationals.push(s);
            }
            for national in nationals {
                let mut inputs = vec![format!("+{code} {national}")];
                if let Ok(id) = meta.id().parse::<phonenumber::country::Id>() {
                    if let Ok(n) = phonenumber::parse(Some(id), &national) {
                        assert_eq!(
                            v.is_valid(&n),
                            phonenumber::is_valid(&n),
                            "{id:?} {national}"
                        );
                        checked += 1;
                    }
                }
                for input in inputs.drain(..) {
                    if let Ok(n) = phonenumber::parse(None, &input) {
                        let want = phonenumber::is_valid(&n);
                        assert_eq!(v.is_valid(&n), want, "{input}");
                        valid += usize::from(want);
                        checked += 1;
                    }
                }
            }
        }
        assert!(
            checked > 3_000 && valid > 500,
            "{checked} checked, {valid} valid"
        );
        assert!(v.read().len() > 1_000);
    }

    /// Past its cap the validator keeps nothing more and lets the crate answer.
    #[test]
    fn the_cache_stops_at_its_cap() {
        let v = Validator {
            cap: 3,
            ..Validator::default()
        };
        for (input, valid) in [
            ("+1 650 253 0000", true),
            ("+44 20 7031 3000", true),
            ("+1 123 456 7890", false),
            ("+33 1 42 68 53 00", true),
        ] {
            let n = phonenumber::parse(None, input).unwrap();
            assert_eq!(v.is_valid(&n), valid, "{input}");
            assert_eq!(phonenumber::is_valid(&n), valid, "{input}");
        }
        assert_eq!(v.read().len(), 3);
    }
}
