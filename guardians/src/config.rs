//! The guardians' configuration: serde-deserializable (`deny_unknown_fields`), with defaults that
//! make zero configuration useful.
//!
//! Defaults: secrets and payment cards are redacted in every direction; a high-confidence
//! injection (score ≥ `block_threshold`) in user input or tool output blocks, anything lower
//! (≥ `flag_threshold`) is flagged; other PII is flagged; content-safety categories flag, except
//! sexual content involving minors, which blocks.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::finding::{Action, Channel};

/// The whole configuration of [`crate::Guardians`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardianConfig {
    /// Personal data.
    pub pii: PiiConfig,
    /// Credentials.
    pub secrets: SecretsConfig,
    /// Prompt injection and jailbreaks.
    pub prompt_injection: InjectionConfig,
    /// Harmful content.
    pub content_safety: ContentSafetyConfig,
    /// How `redact` rewrites text.
    pub redaction: RedactionConfig,
    /// The streaming scanner.
    pub stream: StreamConfig,
}

/// One action per channel. Deserializes from a single action (`redact`) applying to every channel,
/// or from a map naming some channels (`{user_input: block}`; the others keep `flag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ChannelActions {
    /// Request direction.
    pub user_input: Action,
    /// Tool results / retrieved content.
    pub tool_output: Action,
    /// Response direction.
    pub response: Action,
    /// Tool-call arguments.
    pub tool_args: Action,
}

impl ChannelActions {
    /// The same action on every channel.
    pub const fn all(action: Action) -> Self {
        ChannelActions {
            user_input: action,
            tool_output: action,
            response: action,
            tool_args: action,
        }
    }

    /// The action for one channel.
    pub fn get(&self, channel: Channel) -> Action {
        match channel {
            Channel::UserInput => self.user_input,
            Channel::ToolOutput => self.tool_output,
            Channel::Response => self.response,
            Channel::ToolArgs => self.tool_args,
        }
    }
}

impl<'de> Deserialize<'de> for ChannelActions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct PerChannel {
            user_input: Option<Action>,
            tool_output: Option<Action>,
            response: Option<Action>,
            tool_args: Option<Action>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            One(Action),
            Per(PerChannel),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::One(a) => ChannelActions::all(a),
            Raw::Per(p) => ChannelActions {
                user_input: p.user_input.unwrap_or(Action::Flag),
                tool_output: p.tool_output.unwrap_or(Action::Flag),
                response: p.response.unwrap_or(Action::Flag),
                tool_args: p.tool_args.unwrap_or(Action::Flag),
            },
        })
    }
}

/// PII detector settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PiiConfig {
    /// Run the detector at all.
    pub enabled: bool,
    /// Findings scoring below this (after context adjustment) are dropped.
    pub min_score: f32,
    /// Only these entity types (`None`: all of them).
    pub entities: Option<Vec<String>>,
    /// Action for entities without an entry in `entity_actions`.
    pub action: ChannelActions,
    /// Per-entity actions (default: `CREDIT_CARD: redact`).
    pub entity_actions: BTreeMap<String, ChannelActions>,
    /// Regions (ISO 3166 alpha-2) tried, in order, for phone numbers written without a `+`
    /// country code.
    pub phone_regions: Vec<String>,
}

impl Default for PiiConfig {
    fn default() -> Self {
        PiiConfig {
            enabled: true,
            min_score: 0.5,
            entities: None,
            action: ChannelActions::all(Action::Flag),
            entity_actions: BTreeMap::from([(
                "CREDIT_CARD".to_string(),
                ChannelActions::all(Action::Redact),
            )]),
            phone_regions: [
                "US", "GB", "DE", "FR", "IN", "CA", "AU", "BR", "IL", "NL", "CH",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        }
    }
}

/// Secrets detector settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Run the detector at all.
    pub enabled: bool,
    /// Action for every secret.
    pub action: ChannelActions,
    /// gitleaks rule ids to skip.
    pub disabled_rules: Vec<String>,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig {
            enabled: true,
            action: ChannelActions::all(Action::Redact),
            disabled_rules: Vec::new(),
        }
    }
}

/// Prompt-injection detector settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InjectionConfig {
    /// Run the detector at all.
    pub enabled: bool,
    /// Score at or above which evidence is reported (with the `low` action).
    pub flag_threshold: f32,
    /// Score at or above which the `high` action applies.
    pub block_threshold: f32,
    /// Action at or above `block_threshold` (default: block user input and tool output, flag the
    /// rest).
    pub high: ChannelActions,
    /// Action between the two thresholds.
    pub low: ChannelActions,
    /// How many levels of base64 / hex / percent-encoding are decoded and rescanned (0–3).
    pub decode_depth: u8,
}

impl Default for InjectionConfig {
    fn default() -> Self {
        InjectionConfig {
            enabled: true,
            flag_threshold: 0.5,
            block_threshold: 0.8,
            high: ChannelActions {
                user_input: Action::Block,
                tool_output: Action::Block,
                response: Action::Flag,
                tool_args: Action::Flag,
            },
            low: ChannelActions::all(Action::Flag),
            decode_depth: 2,
        }
    }
}

/// One content-safety category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CategoryConfig {
    /// Scan for this category.
    pub enabled: bool,
    /// Findings below this score are dropped.
    pub min_score: f32,
    /// What to do with a finding.
    pub action: ChannelActions,
}

impl Default for CategoryConfig {
    fn default() -> Self {
        CategoryConfig {
            enabled: true,
            min_score: 0.5,
            action: ChannelActions::all(Action::Flag),
        }
    }
}

/// Content-safety settings, one entry per category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentSafetyConfig {
    /// Run the detector at all.
    pub enabled: bool,
    /// Threats and incitement to violence.
    pub violence: CategoryConfig,
    /// Self-harm and suicide.
    pub self_harm: CategoryConfig,
    /// Sexual content involving minors (default action: block).
    pub sexual_minors: CategoryConfig,
    /// Dehumanising or violent speech against protected groups.
    pub hate: CategoryConfig,
    /// Making or acquiring weapons and explosives.
    pub weapons: CategoryConfig,
    /// Making or acquiring illicit drugs.
    pub illicit_drugs: CategoryConfig,
}

impl Default for ContentSafetyConfig {
    fn default() -> Self {
        ContentSafetyConfig {
            enabled: true,
            violence: CategoryConfig::default(),
            self_harm: CategoryConfig::default(),
            sexual_minors: CategoryConfig {
                action: ChannelActions::all(Action::Block),
                ..CategoryConfig::default()
            },
            hate: CategoryConfig::default(),
            weapons: CategoryConfig::default(),
            illicit_drugs: CategoryConfig::default(),
        }
    }
}

/// How redacted spans are rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedactionStyle {
    /// `[EMAIL_ADDRESS]`, `[SECRET]`, ...
    #[default]
    Placeholder,
    /// Every character replaced by `mask_char`.
    Mask,
    /// `[EMAIL_ADDRESS:1a2b3c4d5e6f7a8b]`: HMAC-SHA-256 under `hash_key`, so equal values stay
    /// linkable without being readable.
    Hash,
}

/// A key that never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HashKey(pub String);

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(***)")
    }
}

/// Redaction settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// Placeholder, mask or keyed hash.
    pub style: RedactionStyle,
    /// The mask character for `mask`.
    pub mask_char: char,
    /// The HMAC key for `hash` (required with that style).
    pub hash_key: Option<HashKey>,
}

impl Default for RedactionConfig {
    fn default() -> Self {
        RedactionConfig {
            style: RedactionStyle::Placeholder,
            mask_char: '*',
            hash_key: None,
        }
    }
}

/// Streaming scanner settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Bytes held back at the end of the stream until more text (or `finish`) arrives: the longest
    /// match that must be caught whole across chunk boundaries. Also the look-behind kept as
    /// context before released text.
    pub hold_back: usize,
    /// The scanner rescans its window only once this many new bytes are waiting beyond the
    /// hold-back: larger values cost less CPU per byte and add latency (at most
    /// `hold_back + min_release` bytes are held).
    pub min_release: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            hold_back: 256,
            min_release: 256,
        }
    }
}
