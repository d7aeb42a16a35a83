//! Rewriting redacted spans: placeholder, mask or keyed hash.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{RedactionConfig, RedactionStyle};
use crate::error::GuardianError;
use crate::finding::{Action, Finding};

pub(crate) struct Redactor {
    style: RedactionStyle,
    mask: char,
    key: Vec<u8>,
}

impl Redactor {
    pub(crate) fn new(cfg: &RedactionConfig) -> Result<Self, GuardianError> {
        let key = match (&cfg.style, &cfg.hash_key) {
            (RedactionStyle::Hash, None) => {
                return Err(GuardianError::Config(
                    "redaction.style `hash` needs redaction.hash_key".into(),
                ))
            }
            (RedactionStyle::Hash, Some(k)) if k.0.len() < 16 => {
                return Err(GuardianError::Config(
                    "redaction.hash_key must be at least 16 bytes".into(),
                ))
            }
            (_, Some(k)) => k.0.as_bytes().to_vec(),
            (_, None) => Vec::new(),
        };
        Ok(Redactor {
            style: cfg.style,
            mask: cfg.mask_char,
            key,
        })
    }

    fn replacement(&self, entity: &str, value: &str, out: &mut String) {
        match self.style {
            RedactionStyle::Placeholder => {
                out.push('[');
                out.push_str(entity);
                out.push(']');
            }
            RedactionStyle::Mask => {
                out.extend(std::iter::repeat_n(self.mask, value.chars().count()));
            }
            RedactionStyle::Hash => {
                // The key length was checked at construction; HMAC accepts any key length.
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
                    .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
                mac.update(entity.as_bytes());
                mac.update(&[0]);
                mac.update(value.as_bytes());
                let tag = mac.finalize().into_bytes();
                out.push('[');
                out.push_str(entity);
                out.push(':');
                for b in &tag[..8] {
                    out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
                    out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
                }
                out.push(']');
            }
        }
    }

    /// Appends `text[from..to]` to `out` with every `redact` finding replaced. Finding offsets are
    /// relative to `offset` (the absolute position of `text[0]`); findings are clipped to the
    /// range; overlapping findings are merged and take the first one's entity name.
    pub(crate) fn redact_range(
        &self,
        text: &str,
        offset: usize,
        from: usize,
        to: usize,
        findings: &[&Finding],
        out: &mut String,
    ) {
        let mut spans: Vec<(usize, usize, &str)> = findings
            .iter()
            .filter(|f| f.action == Action::Redact)
            .filter_map(|f| {
                let s = f.start.max(offset + from);
                let e = f.end.min(offset + to);
                (s < e).then(|| (s - offset, e - offset, f.entity_type.as_ref()))
            })
            .collect();
        spans.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
        let mut pos = from;
        let mut i = 0;
        while i < spans.len() {
            let (s, mut e, entity) = spans[i];
            i += 1;
            while i < spans.len() && spans[i].0 < e {
                e = e.max(spans[i].1);
                i += 1;
            }
            let s = s.max(pos);
            if s >= e {
                continue;
            }
            out.push_str(&text[pos..s]);
            self.replacement(entity, &text[s..e], out);
            pos = e;
        }
        out.push_str(&text[pos..to]);
    }
}
