//! Content safety: lexicons and proximity patterns per category.
//!
//! Each category has three kinds of evidence, all matched ASCII case-insensitively on word
//! boundaries:
//! - **act phrases** that are harmful in themselves ("kill myself", "build a bomb", "cook meth");
//!   a finding's score is the phrase's weight;
//! - **topic words** that name a harmful subject but are just as common in news, medicine,
//!   history and fiction ("suicide", "massacre", "sarin", "fentanyl"). Alone they score half
//!   their weight, under the default `min_score` of 0.5; they score their full weight when a
//!   request or intent cue ("how do I", "where can I", "step by step", "I'm going to", "let's")
//!   stands in the same sentence within [`CUE_WINDOW`] bytes;
//! - **proximity patterns** that need two things close together in one sentence: a sexual term
//!   near a minor; a group name followed by a dehumanising predicate or a call to exterminate it;
//!   a violent verb aimed at a person ("strangle someone", "I'm going to stab"); a harm verb on
//!   "myself"; a make/buy/sell verb before a drug or a weapon.
//!
//! Each category has its own threshold and action. `tests/content_eval.rs` measures the
//! detector on a hand-written labelled set (`testdata/content/`).
//!
//! What it misses: anything not in the lexicons (slang, misspellings, other languages: the
//! lexicons are English only), most context (a request cue in a novel's blurb still counts; an
//! act phrase in a news report is still flagged: that is why the default action is `flag`), hate
//! speech that uses no dehumanising pattern or names a group not in its list, and threats
//! phrased without a violent verb. It is a tripwire, not a moderation model.

use std::borrow::Cow;

use regex::Regex;
use regex_automata::meta;

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

/// Act phrases: harmful in themselves.
const LEXICON: &[(Category, f32, &str)] = &[
    (SelfHarm, 0.8, "kill myself"),
    (SelfHarm, 0.8, "end my life"),
    (SelfHarm, 0.8, "take my own life"),
    (SelfHarm, 0.7, "want to die"),
    (SelfHarm, 0.7, "cut myself"),
    (SelfHarm, 0.7, "hurt myself"),
    (SelfHarm, 0.6, "slit my wrists"),
    (SelfHarm, 0.7, "how many pills"),
    (SelfHarm, 0.7, "wish i was dead"),
    (SelfHarm, 0.7, "wish i were dead"),
    (SelfHarm, 0.7, "never wake up"),
    (SelfHarm, 0.7, "not wake up"),
    (SelfHarm, 0.7, "want to be alive"),
    (SelfHarm, 0.7, "better off without me"),
    (SelfHarm, 0.7, "better off if i were gone"),
    (Violence, 0.8, "i will kill you"),
    (Violence, 0.8, "i'm going to kill"),
    (Violence, 0.8, "i am going to kill"),
    (Violence, 0.7, "behead"),
    (Violence, 0.6, "stab him"),
    (Violence, 0.6, "stab her"),
    (Violence, 0.6, "shoot him"),
    (Violence, 0.6, "shoot her"),
    (Violence, 0.7, "shoot up"),
    (Violence, 0.7, "bullet in your head"),
    (Weapons, 0.8, "pipe bomb"),
    (Weapons, 0.8, "build a bomb"),
    (Weapons, 0.8, "make a bomb"),
    (Weapons, 0.7, "untraceable gun"),
    (Weapons, 0.7, "3d printed gun"),
    (Weapons, 0.7, "full auto conversion"),
    (Weapons, 0.7, "auto sear"),
    (IllicitDrugs, 0.8, "cook meth"),
    (IllicitDrugs, 0.8, "synthesize meth"),
    (IllicitDrugs, 0.8, "make meth"),
    (IllicitDrugs, 0.7, "synthesize fentanyl"),
    (IllicitDrugs, 0.6, "buy cocaine"),
    (IllicitDrugs, 0.6, "buy heroin"),
    (IllicitDrugs, 0.6, "grow weed"),
    (IllicitDrugs, 0.7, "extract dmt"),
    (IllicitDrugs, 0.7, "make lsd"),
    (IllicitDrugs, 0.7, "make mdma"),
    (Hate, 0.8, "white power"),
    (Hate, 0.8, "gas the"),
    (Hate, 0.8, "race war"),
    (Hate, 0.7, "subhuman"),
    (Hate, 0.8, "heil hitler"),
    (Hate, 0.8, "14 words"),
];

/// Topic words: harmful subjects that news, medical, historical and fictional text mention
/// too. They score their weight only next to a request or intent cue ([`CUE`]), half alone.
const TOPICS: &[(Category, f32, &str)] = &[
    (SelfHarm, 0.6, "suicide"),
    (SelfHarm, 0.6, "suicidal"),
    (SelfHarm, 0.7, "self-harm"),
    (SelfHarm, 0.7, "self harm"),
    (SelfHarm, 0.8, "overdose on"),
    (SelfHarm, 0.7, "overdose"),
    (SelfHarm, 0.7, "lethal dose"),
    (SelfHarm, 0.7, "fatal dose"),
    (SelfHarm, 0.7, "noose"),
    (SelfHarm, 0.7, "bleed out"),
    (Violence, 0.6, "murder"),
    (Violence, 0.7, "massacre"),
    (Violence, 0.7, "mass shooting"),
    (Violence, 0.6, "torture"),
    (Violence, 0.6, "assassinate"),
    (Violence, 0.7, "kidnap"),
    (Violence, 0.7, "terrorist attack"),
    (Weapons, 0.7, "ghost gun"),
    (Weapons, 0.7, "untraceable firearm"),
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
    (IllicitDrugs, 0.6, "methamphetamine"),
    (IllicitDrugs, 0.6, "fentanyl"),
    (IllicitDrugs, 0.7, "darknet market"),
    (IllicitDrugs, 0.7, "crack cocaine"),
    (Hate, 0.8, "ethnic cleansing"),
    (Hate, 0.7, "untermensch"),
];

/// How far (bytes, either side, within the sentence) a cue may stand from a topic word. Well
/// under the streaming scanner's 128 bytes of look-behind, so a stream decides as a whole text.
pub(crate) const CUE_WINDOW: usize = 100;
/// What a topic word's weight is multiplied by without a cue (every weight is under 1.0, so a
/// bare topic word stays under the default `min_score` of 0.5).
const NO_CUE_FACTOR: f32 = 0.5;

/// Request and intent cues that turn a topic word into a finding.
const CUE: &str = r"(?i)(?-u:\b)(?:how\s+(?:do|can|could|would|should|much|many|long|deep)|how\s+to|where\s+(?:can|do|could|should|would)|(?:best|easiest|quickest|fastest|cheapest|simplest|painless|surest)\s+way|step[\s-]by[\s-]step|recipe|instructions|tutorial|teach\s+me|tell\s+me\s+how|show\s+me\s+how|help\s+me|give\s+me|walk\s+me|i\s*(?:'m|\s+am)\s+(?:going|gonna|planning|ready|about|suicidal)|i\s*(?:'ll|\s+will|\s+want|\s+wanna|\s+need|\s+plan|'ve\s+decided|\s+have\s+decided|\s+keep)|let's|let\s+us|we\s+(?:need|should|must|will)|time\s+for|plan\s+(?:a|an|the|to|for))(?-u:\b)";

const MINOR: &str = r"(?:child|children|kid|kids|minor|minors|underage|under-age|preteen|preteens|pre-teen|pre-teens|toddler|toddlers|infant|infants|schoolgirl|schoolgirls|schoolboy|schoolboys|little\s+(?:girl|boy)s?|(?:[1-9]|1[0-7])[- ]?(?:yo|y/o|years?[- ]old))";
const SEXUAL: &str = r"(?:sex|sexual|sexually|nude|nudes|naked|porn|porno|pornography|erotic|explicit|intercourse|molest|molesting|fondle|fondling|lewd|nsfw)";
const GROUPS: &str = r"(?:jews|jewish\s+people|muslims|christians|blacks|black\s+people|whites|white\s+people|asians|arabs|hispanics|mexicans|immigrants|refugees|gays|gay\s+people|lesbians|trans\s+people|transgender\s+people|women|men|hindus|sikhs|roma|gypsies|disabled\s+people|the\s+disabled)";
const DEHUMANISING: &str = r"(?:vermin|animals|rats|cockroaches|parasites|subhuman|filth|scum|savages|freaks|sheep|a\s+disease|a\s+plague|an\s+infestation|useless\s+eaters)";
const EXTERMINATE: &str = r"(?:exterminated|killed|gassed|eradicated|wiped\s+out|cleansed|put\s+down|rounded\s+up|shot|hanged|burned)";
const VIOLENT_VERB: &str =
    r"(?:kill|murder|stab|shoot|strangle|choke|slash|beat|hurt|drown|poison|torture|kidnap)";
const PERSON: &str =
    r"(?:someone|somebody|a\s+person|people|you|him|her|them|my\s+\w+|his\s+\w+|her\s+\w+)";
const DRUGS: &str = r"(?:meth|methamphetamine|cocaine|coke|crack|heroin|fentanyl|mdma|ecstasy|lsd|dmt|ghb|ketamine|mushrooms|psilocybin|opium|morphine|oxy|oxycodone)";
const DRUG_VERB: &str = r"(?:buy|buying|sell|sells|selling|deal|dealing|cook|cooking|make|making|synthesi[sz]e|extract|grow|growing|smuggle|smuggling|cut|press|mail|ship|hide)";
const WEAPONS: &str = r"(?:bomb|bombs|explosives?|grenades?|detonators?|silencer|suppressor|guns?|handguns?|rifles?|firearms?|tatp|vx|nerve\s+agents?|sarin|ricin|anthrax|napalm|thermite|molotov)";
const WEAPON_VERB: &str = r"(?:make|making|build|building|assemble|print|convert|buy|sneak|smuggle|weaponi[sz]e|synthesi[sz]e|culture|extract)";

/// Gates for the proximity patterns: each runs only when one of its words occurs.
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
    "jew",
    "muslims",
    "christians",
    "black",
    "white",
    "asians",
    "arabs",
    "hispanics",
    "mexicans",
    "immigrants",
    "refugees",
    "gay",
    "lesbians",
    "trans",
    "women",
    "men",
    "hindus",
    "sikhs",
    "roma",
    "gypsies",
    "disabled",
];
/// (The violence topic words, e.g. "murder" and "kidnap", also open this gate.)
const VIOLENCE_HINTS: &[&str] = &[
    "kill", "stab", "shoot", "strangle", "choke", "slash", "beat", "hurt", "drown", "poison",
    "tortur",
];
const SELF_HINTS: &[&str] = &["myself"];
/// (The drug topic words also open this gate.)
const DRUG_HINTS: &[&str] = &[
    "meth",
    "cocaine",
    "coke",
    "crack",
    "heroin",
    "mdma",
    "ecstasy",
    "lsd",
    "dmt",
    "ghb",
    "ketamine",
    "mushrooms",
    "psilocybin",
    "opium",
    "morphine",
    "oxy",
];
/// (The weapon topic words also open this gate; a keyword may appear only once in the list.)
const WEAPON_HINTS: &[&str] = &[
    "bomb",
    "explosive",
    "grenade",
    "detonator",
    "silencer",
    "suppressor",
    "gun",
    "rifle",
    "firearm",
    "tatp",
    "vx",
    "anthrax",
];

/// The proximity patterns, each with its category, score, rule id and gate.
struct Proximity {
    cat: Category,
    score: f32,
    rule: &'static str,
    gate: Gate,
    re: meta::Regex,
}

/// A proximity pattern's gate; the discriminant is its section in [`GATES`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gate {
    Sexual,
    Group,
    Violence,
    SelfHarm,
    Drugs,
    Weapons,
}

/// The keyword list's sections, in order: act phrases, topic words, then each gate's hints.
const GATES: [(Gate, &[&str]); 6] = [
    (Gate::Sexual, SEXUAL_HINTS),
    (Gate::Group, GROUP_HINTS),
    (Gate::Violence, VIOLENCE_HINTS),
    (Gate::SelfHarm, SELF_HINTS),
    (Gate::Drugs, DRUG_HINTS),
    (Gate::Weapons, WEAPON_HINTS),
];

pub(crate) struct ContentDetector {
    /// [`Self::keyword_list`] (overlapping matches; the phrases' leftmost-longest matches are
    /// rebuilt from them), for the unit tests; the engine scans with its shared automaton.
    #[cfg(test)]
    keywords: keywords::KeywordIndex,
    cue: Regex,
    proximity: Vec<Proximity>,
    enabled: [bool; 6],
    min_score: [f32; 6],
}

fn idx(c: Category) -> usize {
    c as usize
}

impl ContentDetector {
    pub(crate) fn new(cfg: &ContentSafetyConfig) -> Result<Self, GuardianError> {
        let b = r"(?-u:\b)";
        let near = r"[^.!?\n]{0,60}?";
        let close = r"[^.!?\n]{0,40}?";
        let specs: [(Category, f32, &'static str, Gate, String); 8] = [
            (
                SexualMinors,
                0.7,
                "minor_sexual_proximity",
                Gate::Sexual,
                format!("{b}{MINOR}{b}{near}{b}{SEXUAL}{b}|{b}{SEXUAL}{b}{near}{b}{MINOR}{b}"),
            ),
            (
                Hate,
                0.8,
                "dehumanising_group",
                Gate::Group,
                format!(
                    r"{b}(?:all|those|these|the)\s+{GROUPS}\s+(?:are|should\s+be|must\s+be|deserve\s+to\s+be)\s+(?:\w+\s+)?(?:vermin|animals|rats|cockroaches|parasites|subhuman|exterminated|killed|gassed|eradicated|wiped\s+out|deported\s+or\s+killed){b}|{b}(?:kill|exterminate|gas|eradicate)\s+all\s+(?:the\s+)?{GROUPS}{b}"
                ),
            ),
            (
                Hate,
                0.7,
                "group_predicate",
                Gate::Group,
                format!(
                    r"{b}{GROUPS}\s+(?:are|is)\s+(?:(?:just|all|nothing\s+but|like)\s+)?(?:\w+\s+)?{DEHUMANISING}{b}|{b}{GROUPS}\s+(?:should|must|need\s+to|deserve\s+to|ought\s+to)\s+(?:all\s+)?be\s+(?:\w+\s+)?{EXTERMINATE}{b}|{b}(?:extermination|eradication|genocide)\s+of\s+(?:the\s+|all\s+)?{GROUPS}{b}"
                ),
            ),
            (
                Violence,
                0.7,
                "threat",
                Gate::Violence,
                format!(
                    r"{b}i\s*(?:'ll|\s+will|'m\s+going\s+to|\s+am\s+going\s+to|'m\s+gonna|\s+am\s+gonna)\s+(?:\w+\s+)?{VIOLENT_VERB}{b}"
                ),
            ),
            (
                Violence,
                0.6,
                "violent_verb_person",
                Gate::Violence,
                format!(
                    r"{b}{VIOLENT_VERB}\s+{PERSON}{b}(?:\s+to\s+death)?|{b}{VIOLENT_VERB}\w*\s+\w+\s+to\s+death{b}"
                ),
            ),
            (
                SelfHarm,
                0.7,
                "self_directed_harm",
                Gate::SelfHarm,
                format!(
                    r"{b}(?:cut|cutting|burn|burning|hurt|hurting|starve|starving|hang|hanging|poison|poisoning|harm|harming|kill|killing)\s+myself{b}"
                ),
            ),
            (
                IllicitDrugs,
                0.7,
                "drug_trade",
                Gate::Drugs,
                format!(r"{b}{DRUG_VERB}{b}{close}{b}{DRUGS}{b}"),
            ),
            (
                Weapons,
                0.7,
                "weapon_making",
                Gate::Weapons,
                format!(r"{b}{WEAPON_VERB}{b}{close}{b}{WEAPONS}{b}"),
            ),
        ];
        let mut proximity = Vec::with_capacity(specs.len());
        for (cat, score, rule, gate, pattern) in specs {
            // Without Unicode (`\w`, `\s` and the `[^.!?\n]{0,60}` gaps as ASCII or byte
            // classes): the eight patterns held 1.18 MB of automata with Unicode classes and
            // hold 0.38 MB so, resident in every process. The lexicon is ASCII, and every
            // pattern starts and ends at an ASCII word boundary, so matches stay on character
            // boundaries; the gaps count bytes.
            let re = meta::Regex::builder()
                .syntax(regex_automata::util::syntax::Config::new().utf8(false))
                .build(&format!("(?i-u){pattern}"))
                .map_err(|e| {
                    GuardianError::Config(format!("pattern {rule} does not compile: {e}"))
                })?;
            proximity.push(Proximity {
                cat,
                score,
                rule,
                gate,
                re,
            });
        }
        let cue = Regex::new(CUE).map_err(|e| GuardianError::pattern("content_safety.cue", e))?;
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
            #[cfg(test)]
            keywords: keywords::KeywordIndex::new(&[(
                keywords::Owner::Content,
                Self::keyword_list(),
            )])?,
            cue,
            proximity,
            enabled,
            min_score,
        })
    }

    /// Act phrases, topic words, then each gate's hints: the keywords [`Self::detect_with`]
    /// expects.
    pub(crate) fn keyword_list() -> Vec<String> {
        LEXICON
            .iter()
            .chain(TOPICS)
            .map(|(_, _, p)| *p)
            .chain(GATES.iter().flat_map(|(_, hints)| hints.iter().copied()))
            .map(str::to_ascii_lowercase)
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn detect(&self, text: &str, out: &mut Vec<Finding>) {
        let hits = self.keywords.scan_for(text, keywords::Owner::Content);
        self.detect_with(text, &hits, out);
    }

    /// Appends findings in `text`, given the occurrences of [`Self::keyword_list`] in it.
    pub(crate) fn detect_with(&self, text: &str, hits: &[Hit], out: &mut Vec<Finding>) {
        let bytes = text.as_bytes();
        let first_new = out.len();
        let acts = LEXICON.len() as u32;
        let phrases = acts + TOPICS.len() as u32;
        for m in keywords::leftmost_longest(hits, |p| p < phrases) {
            let (s, e) = (m.start, m.end);
            let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
            if (s > 0 && word(bytes[s - 1]))
                || (e < bytes.len() && word(bytes[e]) && !matches!(bytes[e], b's' | b'S'))
            {
                continue;
            }
            if m.pattern < acts {
                let (cat, weight, _) = LEXICON[m.pattern as usize];
                self.push(cat, weight, "lexicon", s, e, out);
            } else {
                let (cat, weight, _) = TOPICS[(m.pattern - acts) as usize];
                if !self.enabled[idx(cat)] {
                    continue;
                }
                if self.cued(text, s, e) {
                    self.push(cat, weight, "topic_with_cue", s, e, out);
                } else {
                    self.push(cat, weight * NO_CUE_FACTOR, "topic", s, e, out);
                }
            }
        }
        let mut open = [false; GATES.len()];
        let mut first = phrases;
        for (i, (_, hints)) in GATES.iter().enumerate() {
            let end = first + hints.len() as u32;
            open[i] = hits.iter().any(|h| (first..end).contains(&h.pattern));
            first = end;
        }
        for h in hits.iter().filter(|h| (acts..phrases).contains(&h.pattern)) {
            match TOPICS[(h.pattern - acts) as usize].0 {
                Violence => open[Gate::Violence as usize] = true,
                Weapons => open[Gate::Weapons as usize] = true,
                IllicitDrugs => open[Gate::Drugs as usize] = true,
                _ => {}
            }
        }
        for p in &self.proximity {
            if !open[p.gate as usize] || !self.enabled[idx(p.cat)] {
                continue;
            }
            for m in p.re.find_iter(text) {
                // "Child sexual abuse" is mostly named to report, prevent or treat it: like a
                // topic word, it needs a request or intent cue.
                if p.cat == SexualMinors
                    && names_abuse(text, m.start(), m.end())
                    && !self.cued(text, m.start(), m.end())
                {
                    continue;
                }
                // One finding per category and place: a pattern adds nothing where a phrase or
                // another pattern of the same category already matched.
                let covered = out[first_new..].iter().any(|f| {
                    f.entity_type == p.cat.entity() && f.start < m.end() && m.start() < f.end
                });
                if !covered {
                    self.push(p.cat, p.score, p.rule, m.start(), m.end(), out);
                }
            }
        }
    }

    /// Whether a request or intent cue stands within [`CUE_WINDOW`] bytes of `text[s..e]`, in
    /// the same sentence.
    fn cued(&self, text: &str, s: usize, e: usize) -> bool {
        let bytes = text.as_bytes();
        let stop = |b: &u8| matches!(b, b'.' | b'!' | b'?' | b'\n');
        let lo = s.saturating_sub(CUE_WINDOW);
        let from = bytes[lo..s]
            .iter()
            .rposition(stop)
            .map_or(lo, |i| lo + i + 1);
        let hi = (e + CUE_WINDOW).min(bytes.len());
        let to = bytes[e..hi].iter().position(stop).map_or(hi, |i| e + i);
        let from = crate::pii::floor_boundary(text, from);
        let to = crate::pii::floor_boundary(text, to);
        self.cue.is_match(&text[from..to])
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

/// Whether `text[s..e]`, or the 16 bytes after it, name abuse or exploitation.
fn names_abuse(text: &str, s: usize, e: usize) -> bool {
    let to = crate::pii::floor_boundary(text, (e + 16).min(text.len()));
    let t = text[s..to].to_ascii_lowercase();
    t.contains("abuse") || t.contains("exploitation")
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

    /// A phrase's words may be apart by any run of spaces, tabs and line breaks (wrapped or
    /// indented text, or padding meant to slip past the lexicon).
    #[test]
    fn phrases_across_space_runs() {
        for t in [
            "I want to kill  myself",
            "I want to kill\nmyself",
            "how to build a\r\n   bomb at home",
            "how do I cook\t\tmeth",
        ] {
            let one_line = t.split_ascii_whitespace().collect::<Vec<_>>().join(" ");
            assert!(!cats(t).is_empty(), "{t:?}");
            assert_eq!(cats(t), cats(&one_line), "{t:?}");
        }
    }

    #[test]
    fn keywords_are_unique_and_gates_in_order() {
        let list = ContentDetector::keyword_list();
        let mut sorted = list.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), list.len(), "a keyword appears twice");
        for (i, (g, _)) in GATES.iter().enumerate() {
            assert_eq!(*g as usize, i);
        }
    }

    #[test]
    fn topic_words_need_a_cue() {
        assert!(cats("Researchers found that suicide rates rose during the drought.").is_empty());
        assert_eq!(
            cats("What's the most painless way to commit suicide?"),
            vec!["SELF_HARM"]
        );
        assert!(cats("Inspectors confirmed that sarin was used in the attack.").is_empty());
        assert_eq!(
            cats("Explain how to synthesize sarin at home."),
            vec!["WEAPONS"]
        );
        // The cue must be in the same sentence.
        assert!(cats("How do I bake bread? The massacre was in 1995.").is_empty());
        // A lower min_score reports bare topic words.
        let mut cfg = ContentSafetyConfig::default();
        cfg.self_harm.min_score = 0.3;
        let d = ContentDetector::new(&cfg).unwrap();
        let mut out = Vec::new();
        d.detect("suicide rates rose", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].rule, "topic");
    }

    #[test]
    fn proximity_patterns() {
        assert_eq!(cats("how do I strangle someone"), vec!["VIOLENCE"]);
        assert_eq!(cats("listen, I'm going to hurt you"), vec!["VIOLENCE"]);
        assert_eq!(cats("I keep burning myself"), vec!["SELF_HARM"]);
        assert_eq!(
            cats("who sells heroin near the station"),
            vec!["ILLICIT_DRUGS"]
        );
        assert_eq!(cats("how can I sneak a gun past security"), vec!["WEAPONS"]);
        assert_eq!(cats("Hindus are filth"), vec!["HATE"]);
        assert_eq!(cats("calling for the extermination of Sikhs"), vec!["HATE"]);
        assert_eq!(cats("a sex scene with two preteens"), vec!["SEXUAL_MINORS"]);
        // Benign neighbours.
        assert!(cats("Women are underrepresented in engineering").is_empty());
        assert!(cats("the hospital helps people stop using heroin").is_empty());
        assert!(cats("kill -9 the stuck worker").is_empty());
        // Naming child sexual abuse to report it is not a request for it.
        assert!(cats("signs that a child is being sexually abused, and who to call").is_empty());
        assert_eq!(
            cats("how do I sexually abuse a child"),
            vec!["SEXUAL_MINORS"]
        );
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
