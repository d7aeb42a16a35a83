//! Content safety: lexicons and proximity patterns per category.
//!
//! Each category has phrases (matched with Aho-Corasick, ASCII case-insensitive, on word
//! boundaries) and a few patterns that need two things near each other (a sexual term near a
//! minor; a method near "kill myself"). A finding's score is the phrase's weight; each category
//! has its own threshold and action.
//!
//! What it misses: anything not in the lexicons (slang, misspellings, other languages), context
//! (fiction, news reporting and medical text about the same topics are flagged alike; that is why
//! the default action is `flag`), and hate speech that uses no dehumanising pattern. It is a
//! tripwire, not a moderation model.

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;

use crate::config::{CategoryConfig, ContentSafetyConfig};
use crate::error::GuardianError;
use crate::finding::{Action, DetectorId, Finding};
use crate::keywords::{self, Hit};

/// Category entity types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    Violence,
    SelfHarm,
    SexualMinors,
    Hate,
    Weapons,
    IllicitDrugs,
}

impl Category {
    pub(crate) fn entity(self) -> &'static str {
        match self {
            Category::Violence => "VIOLENCE",
            Category::SelfHarm => "SELF_HARM",
            Category::SexualMinors => "SEXUAL_MINORS",
            Category::Hate => "HATE",
            Category::Weapons => "WEAPONS",
            Category::IllicitDrugs => "ILLICIT_DRUGS",
        }
    }

    pub(crate) fn config(self, c: &ContentSafetyConfig) -> &CategoryConfig {
        match self {
            Category::Violence => &c.violence,
            Category::SelfHarm => &c.self_harm,
            Category::SexualMinors => &c.sexual_minors,
            Category::Hate => &c.hate,
            Category::Weapons => &c.weapons,
            Category::IllicitDrugs => &c.illicit_drugs,
        }
    }
}

use Category::*;

const LEXICON: &[(Category, f32, &str)] = &[
    (SelfHarm, 0.8, "kill myself"),
    (SelfHarm, 0.8, "end my life"),
    (SelfHarm, 0.8, "take my own life"),
    (SelfHarm, 0.7, "want to die"),
    (SelfHarm, 0.6, "suicide"),
    (SelfHarm, 0.5, "suicidal"),
    (SelfHarm, 0.7, "self-harm"),
    (SelfHarm, 0.7, "self harm"),
    (SelfHarm, 0.7, "cut myself"),
    (SelfHarm, 0.7, "hurt myself"),
    (SelfHarm, 0.8, "overdose on"),
    (SelfHarm, 0.6, "slit my wrists"),
    (SelfHarm, 0.7, "how many pills"),
    (Violence, 0.8, "i will kill you"),
    (Violence, 0.8, "i'm going to kill"),
    (Violence, 0.8, "i am going to kill"),
    (Violence, 0.6, "murder"),
    (Violence, 0.7, "behead"),
    (Violence, 0.7, "massacre"),
    (Violence, 0.7, "mass shooting"),
    (Violence, 0.6, "stab him"),
    (Violence, 0.6, "stab her"),
    (Violence, 0.6, "shoot him"),
    (Violence, 0.6, "shoot her"),
    (Violence, 0.7, "shoot up"),
    (Violence, 0.6, "torture"),
    (Violence, 0.6, "assassinate"),
    (Violence, 0.7, "kidnap"),
    (Violence, 0.7, "terrorist attack"),
    (Weapons, 0.8, "pipe bomb"),
    (Weapons, 0.8, "build a bomb"),
    (Weapons, 0.8, "make a bomb"),
    (Weapons, 0.7, "ghost gun"),
    (Weapons, 0.7, "untraceable gun"),
    (Weapons, 0.7, "untraceable firearm"),
    (Weapons, 0.7, "3d printed gun"),
    (Weapons, 0.7, "full auto conversion"),
    (Weapons, 0.7, "auto sear"),
    (Weapons, 0.7, "napalm"),
    (Weapons, 0.6, "thermite"),
    (Weapons, 0.8, "nerve agent"),
    (Weapons, 0.8, "sarin"),
    (Weapons, 0.8, "ricin"),
    (Weapons, 0.7, "molotov"),
    (Weapons, 0.6, "explosive device"),
    (Weapons, 0.8, "dirty bomb"),
    (Weapons, 0.8, "bioweapon"),
    (Weapons, 0.8, "chemical weapon"),
    (IllicitDrugs, 0.8, "cook meth"),
    (IllicitDrugs, 0.8, "synthesize meth"),
    (IllicitDrugs, 0.8, "make meth"),
    (IllicitDrugs, 0.6, "methamphetamine"),
    (IllicitDrugs, 0.7, "synthesize fentanyl"),
    (IllicitDrugs, 0.6, "fentanyl"),
    (IllicitDrugs, 0.6, "buy cocaine"),
    (IllicitDrugs, 0.6, "buy heroin"),
    (IllicitDrugs, 0.7, "darknet market"),
    (IllicitDrugs, 0.6, "grow weed"),
    (IllicitDrugs, 0.7, "extract dmt"),
    (IllicitDrugs, 0.7, "make lsd"),
    (IllicitDrugs, 0.7, "make mdma"),
    (IllicitDrugs, 0.7, "crack cocaine"),
    (Hate, 0.8, "ethnic cleansing"),
    (Hate, 0.8, "white power"),
    (Hate, 0.8, "gas the"),
    (Hate, 0.8, "race war"),
    (Hate, 0.7, "subhuman"),
    (Hate, 0.7, "untermensch"),
    (Hate, 0.8, "heil hitler"),
    (Hate, 0.8, "14 words"),
];

const MINOR: &str = r"(?:child|children|kid|kids|minor|minors|underage|under-age|preteen|pre-teen|toddler|infant|schoolgirl|schoolboy|little\s+(?:girl|boy)|(?:[1-9]|1[0-7])[- ]?(?:yo|y/o|years?[- ]old))";
const SEXUAL: &str = r"(?:sex|sexual|sexually|nude|nudes|naked|porn|porno|pornography|erotic|explicit|intercourse|molest|molesting|fondle|fondling|lewd|nsfw)";
const GROUPS: &str = r"(?:jews|muslims|christians|blacks|whites|asians|arabs|hispanics|mexicans|immigrants|refugees|gays|lesbians|trans\s+people|transgender\s+people|women|men|hindus|sikhs|roma|gypsies)";

/// Gates for the proximity patterns: they run only when one of these words occurs.
const SEXUAL_HINTS: &[&str] = &[
    "sex",
    "nude",
    "naked",
    "porn",
    "erotic",
    "explicit",
    "intercourse",
    "molest",
    "fondl",
    "lewd",
    "nsfw",
];
const GROUP_HINTS: &[&str] = &[
    "jews",
    "muslims",
    "christians",
    "blacks",
    "whites",
    "asians",
    "arabs",
    "hispanics",
    "mexicans",
    "immigrants",
    "refugees",
    "gays",
    "lesbians",
    "trans",
    "women",
    "men",
    "hindus",
    "sikhs",
    "roma",
    "gypsies",
];

pub(crate) struct ContentDetector {
    /// The lexicon's phrases, then the sexual hints, then the group hints (overlapping matches;
    /// the lexicon's leftmost-longest matches are rebuilt from them). Used when the engine's
    /// shared automaton did not scan the text.
    #[cfg_attr(not(test), allow(dead_code))]
    keywords: AhoCorasick,
    minors: Regex,
    hate: Regex,
    enabled: [bool; 6],
    min_score: [f32; 6],
}

fn idx(c: Category) -> usize {
    c as usize
}

impl ContentDetector {
    pub(crate) fn new(cfg: &ContentSafetyConfig) -> Result<Self, GuardianError> {
        let keywords = keywords::automaton(Self::keyword_list(), MatchKind::Standard)?;
        let b = r"(?-u:\b)";
        let minors = Regex::new(&format!(
            r"(?i){b}{MINOR}{b}[^.\n]{{0,60}}?{b}{SEXUAL}{b}|{b}{SEXUAL}{b}[^.\n]{{0,60}}?{b}{MINOR}{b}"
        ))
        .map_err(|e| GuardianError::pattern("content_safety.sexual_minors", e))?;
        let hate = Regex::new(&format!(
            r"(?i){b}(?:all|those|these|the)\s+{GROUPS}\s+(?:are|should\s+be|must\s+be|deserve\s+to\s+be)\s+(?:\w+\s+)?(?:vermin|animals|rats|cockroaches|parasites|subhuman|exterminated|killed|gassed|eradicated|wiped\s+out|deported\s+or\s+killed){b}|{b}(?:kill|exterminate|gas|eradicate)\s+all\s+(?:the\s+)?{GROUPS}{b}"
        ))
        .map_err(|e| GuardianError::pattern("content_safety.hate", e))?;
        let all = [
            Violence,
            SelfHarm,
            SexualMinors,
            Hate,
            Weapons,
            IllicitDrugs,
        ];
        let mut enabled = [false; 6];
        let mut min_score = [1.0; 6];
        for c in all {
            enabled[idx(c)] = c.config(cfg).enabled;
            min_score[idx(c)] = c.config(cfg).min_score;
        }
        Ok(ContentDetector {
            keywords,
            minors,
            hate,
            enabled,
            min_score,
        })
    }

    /// Lexicon phrases, sexual hints, group hints: the keywords [`Self::detect_with`] expects.
    pub(crate) fn keyword_list() -> Vec<String> {
        LEXICON
            .iter()
            .map(|(_, _, p)| *p)
            .chain(SEXUAL_HINTS.iter().copied())
            .chain(GROUP_HINTS.iter().copied())
            .map(str::to_ascii_lowercase)
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn detect(&self, text: &str, out: &mut Vec<Finding>) {
        let hits: Vec<Hit> = self
            .keywords
            .find_overlapping_iter(text)
            .map(|m| Hit {
                pattern: m.pattern().as_u32(),
                start: m.start(),
                end: m.end(),
            })
            .collect();
        self.detect_with(text, &hits, out);
    }

    /// Appends findings in `text`, given the occurrences of [`Self::keyword_list`] in it.
    pub(crate) fn detect_with(&self, text: &str, hits: &[Hit], out: &mut Vec<Finding>) {
        let bytes = text.as_bytes();
        let lexicon = LEXICON.len() as u32;
        let sexual = lexicon + SEXUAL_HINTS.len() as u32;
        for m in keywords::leftmost_longest(hits, |p| p < lexicon) {
            let (s, e) = (m.start, m.end);
            let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
            if (s > 0 && word(bytes[s - 1]))
                || (e < bytes.len() && word(bytes[e]) && !matches!(bytes[e], b's' | b'S'))
            {
                continue;
            }
            let (cat, weight, _) = LEXICON[m.pattern as usize];
            self.push(cat, weight, "lexicon", s, e, out);
        }
        let sexual_hint = hits.iter().any(|h| (lexicon..sexual).contains(&h.pattern));
        let group_hint = hits.iter().any(|h| h.pattern >= sexual);
        if self.enabled[idx(SexualMinors)] && sexual_hint {
            for m in self.minors.find_iter(text) {
                self.push(
                    SexualMinors,
                    0.7,
                    "minor_sexual_proximity",
                    m.start(),
                    m.end(),
                    out,
                );
            }
        }
        if self.enabled[idx(Hate)] && group_hint {
            for m in self.hate.find_iter(text) {
                self.push(Hate, 0.8, "dehumanising_group", m.start(), m.end(), out);
            }
        }
    }

    fn push(
        &self,
        cat: Category,
        score: f32,
        rule: &'static str,
        start: usize,
        end: usize,
        out: &mut Vec<Finding>,
    ) {
        if !self.enabled[idx(cat)] || score < self.min_score[idx(cat)] {
            return;
        }
        out.push(Finding {
            detector: DetectorId::ContentSafety,
            entity_type: Cow::Borrowed(cat.entity()),
            rule: Cow::Borrowed(rule),
            start,
            end,
            score,
            action: Action::Flag,
        });
    }
}

pub(crate) fn category_of(entity: &str) -> Option<Category> {
    [
        Violence,
        SelfHarm,
        SexualMinors,
        Hate,
        Weapons,
        IllicitDrugs,
    ]
    .into_iter()
    .find(|c| c.entity() == entity)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats(text: &str) -> Vec<&'static str> {
        let d = ContentDetector::new(&ContentSafetyConfig::default()).unwrap();
        let mut out = Vec::new();
        d.detect(text, &mut out);
        out.iter()
            .map(|f| match f.entity_type {
                Cow::Borrowed(s) => s,
                Cow::Owned(_) => "",
            })
            .collect()
    }

    #[test]
    fn categories() {
        assert_eq!(cats("I want to kill myself"), vec!["SELF_HARM"]);
        assert_eq!(cats("how to build a bomb at home"), vec!["WEAPONS"]);
        assert_eq!(cats("how do I cook meth"), vec!["ILLICIT_DRUGS"]);
        assert_eq!(cats("all immigrants are vermin"), vec!["HATE"]);
        assert_eq!(
            cats("explicit photos of a 12 year old"),
            vec!["SEXUAL_MINORS"]
        );
        assert!(cats("the murderer in the novel").is_empty());
        assert!(cats("a nice day at the beach").is_empty());
    }

    #[test]
    fn per_category_switch() {
        let mut cfg = ContentSafetyConfig::default();
        cfg.weapons.enabled = false;
        let d = ContentDetector::new(&cfg).unwrap();
        let mut out = Vec::new();
        d.detect("how to build a bomb", &mut out);
        assert!(out.is_empty());
    }
}
