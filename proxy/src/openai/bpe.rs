//! Byte-pair encoding of OpenAI's `o200k_base` and `cl100k_base`, for counting tokens, with a
//! vocabulary laid out for memory rather than throughput.
//!
//! Why not the `tiktoken` crate's engine: it keeps `o200k_base` in an open-addressing table of
//! 2^19 sixteen-byte slots beside a decoder (11.6 MiB resident), plus a piece cache per thread
//! (about 1.2 MiB each). That layout pays off on megabytes of text; a sidecar counts prompts of a
//! few KiB and has a memory budget of tens of MiB. Here the same vocabulary takes about 3.6 MiB:
//! the tokens' bytes in one buffer in rank order, a direct table for two-byte tokens, and a
//! hash table holding only ranks (the key is found through the rank). The crate stays the source
//! of the vocabulary (read once at start-up, then dropped) and the oracle the tests compare with.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use regex_automata::{meta, Anchored, Input};

/// Rank of "no token": pairs that do not merge.
const NONE: u32 = u32::MAX;

/// Pieces up to this length are merged by rescanning an array on the stack; longer ones (a run
/// of one character, a long word) go through a heap so that no input costs quadratic time.
const SHORT_PIECE: usize = 64;

/// The pre-tokenizer of `o200k_base`, as OpenAI publishes it, except that its
/// `\s+(?!\S)|\s+` is written `\s+` (the regex crate has no look-ahead): [`Bpe::piece_end`]
/// gives back the last whitespace character where the look-ahead would have.
const O200K_SPLIT: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n/]*",
    r"|\s*[\r\n]+",
    r"|\s+",
);

/// The pre-tokenizer of `cl100k_base`, with the same change as [`O200K_SPLIT`].
const CL100K_SPLIT: &str = concat!(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+",
);

/// How a split pattern treats ASCII, for [`Bpe::ascii_piece_end`].
#[derive(Clone, Copy)]
struct Ascii {
    /// `o200k_base`: a word ends where lower case turns to upper ("camel|Case", "HTTPServer"),
    /// and `'s`, `'ll`... end the word before them. `cl100k_base`: a word is any run of letters,
    /// and `'s`, `'ll`... are pieces of their own.
    case_split: bool,
    /// What may follow a run of punctuation in the same piece.
    after_punct: &'static [u8],
}

const O200K_ASCII: Ascii = Ascii {
    case_split: true,
    after_punct: b"\r\n/",
};

const CL100K_ASCII: Ascii = Ascii {
    case_split: false,
    after_punct: b"\r\n",
};

/// An encoding: how text is split into pieces, and the ranks pieces are merged by.
pub struct Bpe {
    split: meta::Regex,
    ascii: Ascii,
    /// Every token's bytes, in rank order: token `r` is `bytes[starts[r]..starts[r + 1]]`.
    bytes: Box<[u8]>,
    starts: Box<[u32]>,
    /// Rank of each two-byte token, indexed by `first << 8 | second`; [`NONE`] where absent.
    pairs: Box<[u32]>,
    /// Ranks of the tokens of three bytes or more, hashed by their bytes.
    longer: HashTable<u32>,
    hasher: DefaultHashBuilder,
    longest: usize,
}

/// Why an encoding could not be built from the `tiktoken` crate.
#[derive(Debug, thiserror::Error)]
pub enum BpeError {
    #[error("byte {0:#04x} is not a token: not a byte-level encoding")]
    MissingByte(u8),
    #[error("the split pattern does not compile: {0}")]
    Pattern(String),
}

impl Bpe {
    /// `o200k_base`: GPT-4o, GPT-4.1, GPT-5, o-series; the stand-in for unknown models.
    pub fn o200k_base() -> Result<Bpe, BpeError> {
        Bpe::from_tiktoken(&tiktoken::encoding::o200k_base(), O200K_SPLIT, O200K_ASCII)
    }

    /// `cl100k_base`: GPT-4, GPT-3.5, and the `text-embedding-3` and `-ada-002` models.
    pub fn cl100k_base() -> Result<Bpe, BpeError> {
        Bpe::from_tiktoken(
            &tiktoken::encoding::cl100k_base(),
            CL100K_SPLIT,
            CL100K_ASCII,
        )
    }

    /// Reads the regular tokens out of `core` by decoding each rank.
    fn from_tiktoken(
        core: &tiktoken::CoreBpe,
        pattern: &str,
        ascii: Ascii,
    ) -> Result<Bpe, BpeError> {
        let split = meta::Regex::new(pattern).map_err(|e| BpeError::Pattern(e.to_string()))?;
        let n = core.vocab_size();
        let mut bytes = Vec::with_capacity(n * 8);
        let mut starts = Vec::with_capacity(n + 1);
        for rank in 0..n as u32 {
            starts.push(bytes.len() as u32);
            bytes.extend_from_slice(&core.decode(&[rank]));
        }
        starts.push(bytes.len() as u32);
        let hasher = DefaultHashBuilder::default();
        let rehash = |&r: &u32| hasher.hash_one(token_of(&bytes, &starts, r));
        let mut pairs = vec![NONE; 1 << 16].into_boxed_slice();
        // Sized once for the tokens of three bytes or more: no growth, no rehashing.
        let longer_count = starts.windows(2).filter(|w| w[1] - w[0] >= 3).count();
        let mut longer = HashTable::with_capacity(longer_count);
        let mut single = [false; 256];
        let mut longest = 0;
        for rank in 0..n as u32 {
            let token = token_of(&bytes, &starts, rank);
            longest = longest.max(token.len());
            match *token {
                [] => {}
                [b] => single[b as usize] = true,
                [a, b] => pairs[usize::from(a) << 8 | usize::from(b)] = rank,
                _ => {
                    longer.insert_unique(hasher.hash_one(token), rank, rehash);
                }
            }
        }
        if let Some(b) = (0..=255u8).find(|&b| !single[b as usize]) {
            return Err(BpeError::MissingByte(b));
        }
        Ok(Bpe {
            split,
            ascii,
            bytes: bytes.into_boxed_slice(),
            starts: starts.into_boxed_slice(),
            pairs,
            longer,
            hasher,
            longest,
        })
    }

    /// Tokens in `text`, special tokens counted as the ordinary text they are.
    pub fn count(&self, text: &str) -> usize {
        let mut count = 0;
        let mut pos = 0;
        while pos < text.len() {
            let end = self.piece_end(text, pos);
            count += self.count_piece(&text.as_bytes()[pos..end]);
            pos = end;
        }
        count
    }

    /// Where the piece that begins at `pos` ends. Every character matches one of the pattern's
    /// branches, so pieces tile the text and an anchored search finds each one.
    fn piece_end(&self, text: &str, pos: usize) -> usize {
        match self.ascii_piece_end(text.as_bytes(), pos) {
            Some(end) => end,
            None => self.regex_piece_end(text, pos),
        }
    }

    fn regex_piece_end(&self, text: &str, pos: usize) -> usize {
        let input = Input::new(text).range(pos..).anchored(Anchored::Yes);
        let Some(m) = self.split.search(&input) else {
            // Unreachable with the patterns above; one character is the least that moves on.
            return pos + text[pos..].chars().next().map_or(1, char::len_utf8);
        };
        let end = m.end();
        // `\s+(?!\S)`: a run of spaces (no line break at its end) followed by something else
        // leaves its last space to that something (" x" is one token).
        let piece = &text[pos..end];
        let mut chars = piece.char_indices();
        let Some((last_at, last)) = chars.next_back() else {
            return end;
        };
        let followed = text[end..].chars().next();
        if last_at > 0
            && last.is_whitespace()
            && last != '\n'
            && last != '\r'
            && followed.is_some_and(|c| !c.is_whitespace())
            && piece.chars().all(char::is_whitespace)
        {
            return pos + last_at;
        }
        end
    }

    /// The split pattern's answer where ASCII alone decides it, or `None` (the regex decides)
    /// as soon as a byte that matters is not ASCII: a letter, digit, symbol or space beyond
    /// ASCII could extend the piece. A regex search per piece costs five times the rest of the
    /// count on English text; this is the same branch order, read byte by byte.
    fn ascii_piece_end(&self, b: &[u8], pos: usize) -> Option<usize> {
        use Class::*;
        let class = |i: usize| b.get(i).map_or(End, |&c| Class::of(c));
        let letter = |c: Class| matches!(c, Upper | Lower);
        let first = class(pos);
        if first == NonAscii {
            return None;
        }
        if !self.ascii.case_split {
            if let Some(end) = contraction(b, pos)? {
                return Some(end);
            }
        }
        // [^\r\n\p{L}\p{N}]? then letters.
        let word = if letter(first) {
            Some(pos)
        } else if matches!(first, Space | Other) {
            match class(pos + 1) {
                Upper | Lower => Some(pos + 1),
                NonAscii => return None,
                _ => None,
            }
        } else {
            None
        };
        if let Some(start) = word {
            let mut end = start;
            if self.ascii.case_split {
                // [upper]*[lower]+ or [upper]+[lower]*: either way, uppers then lowers.
                while class(end) == Upper {
                    end += 1;
                }
                while class(end) == Lower {
                    end += 1;
                }
            } else {
                while letter(class(end)) {
                    end += 1;
                }
            }
            if class(end) == NonAscii {
                return None;
            }
            if self.ascii.case_split {
                end = contraction(b, end)?.unwrap_or(end);
            }
            return Some(end);
        }
        if first == Digit {
            let mut end = pos;
            while end < pos + 3 && class(end) == Digit {
                end += 1;
            }
            return (end == pos + 3 || class(end) != NonAscii).then_some(end);
        }
        // ` ?[^\s\p{L}\p{N}]+` and what may follow it.
        let punct = if b[pos] == b' ' { pos + 1 } else { pos };
        match class(punct) {
            Other => {
                let mut end = punct;
                while class(end) == Other {
                    end += 1;
                }
                if class(end) == NonAscii {
                    return None;
                }
                while b
                    .get(end)
                    .is_some_and(|c| self.ascii.after_punct.contains(c))
                {
                    end += 1;
                }
                return Some(end);
            }
            NonAscii => return None,
            _ => {}
        }
        // `\s*[\r\n]+`, else `\s+(?!\S)|\s+`.
        let mut end = pos;
        let mut past_line_break = None;
        while matches!(class(end), Space | LineBreak) {
            if class(end) == LineBreak {
                past_line_break = Some(end + 1);
            }
            end += 1;
        }
        if class(end) == NonAscii {
            return None;
        }
        Some(match past_line_break {
            Some(after) => after,
            None if end - pos >= 2 && end < b.len() => end - 1,
            None => end,
        })
    }

    fn token(&self, rank: u32) -> &[u8] {
        token_of(&self.bytes, &self.starts, rank)
    }

    fn rank(&self, bytes: &[u8]) -> u32 {
        match *bytes {
            [a, b] => self.pairs[usize::from(a) << 8 | usize::from(b)],
            [_, _, _, ..] if bytes.len() <= self.longest => {
                let hash = self.hasher.hash_one(bytes);
                self.longer
                    .find(hash, |&r| self.token(r) == bytes)
                    .copied()
                    .unwrap_or(NONE)
            }
            _ => NONE,
        }
    }

    fn count_piece(&self, piece: &[u8]) -> usize {
        if piece.len() < 2 || self.rank(piece) != NONE {
            1
        } else if piece.len() <= SHORT_PIECE {
            self.merge_short(piece)
        } else {
            self.merge_long(piece)
        }
    }

    /// OpenAI's merge: while some adjacent pair of parts is a token, join the pair of lowest
    /// rank (the leftmost of equals). `at[i]` is where part `i` begins; `ranks[i]` the rank of
    /// parts `i` and `i + 1` joined.
    fn merge_short(&self, piece: &[u8]) -> usize {
        let n = piece.len();
        let mut at = [0u8; SHORT_PIECE + 1];
        let mut ranks = [NONE; SHORT_PIECE];
        for (i, a) in at.iter_mut().enumerate().take(n + 1) {
            *a = i as u8;
        }
        for (i, r) in ranks.iter_mut().enumerate().take(n - 1) {
            *r = self.rank(&piece[i..i + 2]);
        }
        let mut parts = n;
        loop {
            let Some((i, _)) = ranks[..parts - 1]
                .iter()
                .enumerate()
                .filter(|(_, &r)| r != NONE)
                .min_by_key(|(i, &r)| (r, *i))
            else {
                return parts;
            };
            // Part i + 1 joins part i.
            at.copy_within(i + 2..=parts, i + 1);
            ranks.copy_within(i + 1..parts - 1, i);
            parts -= 1;
            let joined = |j: usize| {
                if j + 2 <= parts {
                    self.rank(&piece[at[j] as usize..at[j + 2] as usize])
                } else {
                    NONE
                }
            };
            ranks[i] = joined(i);
            if i > 0 {
                ranks[i - 1] = joined(i - 1);
            }
        }
    }

    /// The same merge in O(n log n): parts form a linked list over their first byte, candidate
    /// joins sit in a min-heap by (rank, position), and an entry whose rank no longer matches
    /// its position's current pair is skipped when it comes up.
    fn merge_long(&self, piece: &[u8]) -> usize {
        // Positions as u32 (20 bytes of scratch per byte of piece, not 36): a piece is at most a
        // request body, and bodies are capped far below 4 GiB (`proxy.max_body_bytes`).
        let n = piece.len();
        debug_assert!(u32::try_from(n).is_ok());
        let mut next: Vec<u32> = (1..=n as u32).collect();
        let mut prev: Vec<u32> = (0..n as u32).map(|i| i.wrapping_sub(1)).collect();
        let mut rank_at = vec![NONE; n];
        let mut heap = BinaryHeap::new();
        for i in 0..n - 1 {
            let r = self.rank(&piece[i..i + 2]);
            rank_at[i] = r;
            if r != NONE {
                heap.push(Reverse((r, i as u32)));
            }
        }
        let mut parts = n;
        while let Some(Reverse((r, i))) = heap.pop() {
            let i = i as usize;
            if rank_at[i] != r {
                continue;
            }
            let gone = next[i] as usize;
            let after = next[gone] as usize;
            next[i] = after as u32;
            if after < n {
                prev[after] = i as u32;
            }
            rank_at[gone] = NONE;
            parts -= 1;
            rank_at[i] = if after < n {
                self.rank(&piece[i..next[after] as usize])
            } else {
                NONE
            };
            if rank_at[i] != NONE {
                heap.push(Reverse((rank_at[i], i as u32)));
            }
            if i > 0 {
                let p = prev[i] as usize;
                rank_at[p] = self.rank(&piece[p..after]);
                if rank_at[p] != NONE {
                    heap.push(Reverse((rank_at[p], p as u32)));
                }
            }
        }
        parts
    }

    /// Heap bytes held by the vocabulary.
    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.bytes.len()
            + self.starts.len() * 4
            + self.pairs.len() * 4
            + self.longer.allocation_size()
    }
}

/// ASCII bytes as the split patterns see them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Upper,
    Lower,
    Digit,
    /// `\r` and `\n`, which `[^\r\n\p{L}\p{N}]` leaves out.
    LineBreak,
    /// The rest of `\s`: space, tab, vertical tab, form feed.
    Space,
    /// `[^\s\p{L}\p{N}]`: punctuation, symbols, control characters.
    Other,
    NonAscii,
    End,
}

impl Class {
    fn of(c: u8) -> Class {
        match c {
            b'A'..=b'Z' => Class::Upper,
            b'a'..=b'z' => Class::Lower,
            b'0'..=b'9' => Class::Digit,
            b'\r' | b'\n' => Class::LineBreak,
            b' ' | b'\t' | 0x0b | 0x0c => Class::Space,
            0x80.. => Class::NonAscii,
            _ => Class::Other,
        }
    }
}

/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)` at `at`: where it ends, or `Some(None)` if there is none;
/// `None` if a byte it depends on is not ASCII (`ſ` folds to `s`).
fn contraction(b: &[u8], at: usize) -> Option<Option<usize>> {
    if b.get(at) != Some(&b'\'') {
        return Some(None);
    }
    let lower = |i: usize| b.get(at + i).map(u8::to_ascii_lowercase);
    match lower(1) {
        Some(0x80..) => None,
        Some(b's' | b't' | b'm' | b'd') => Some(Some(at + 2)),
        Some(c @ (b'r' | b'v' | b'l')) => match lower(2) {
            Some(d)
                if (c, d) == (b'r', b'e') || (c, d) == (b'v', b'e') || (c, d) == (b'l', b'l') =>
            {
                Some(Some(at + 3))
            }
            _ => Some(None),
        },
        _ => Some(None),
    }
}

fn token_of<'a>(bytes: &'a [u8], starts: &[u32], rank: u32) -> &'a [u8] {
    let r = rank as usize;
    &bytes[starts[r] as usize..starts[r + 1] as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn o200k() -> &'static Bpe {
        static B: OnceLock<Bpe> = OnceLock::new();
        B.get_or_init(|| Bpe::o200k_base().unwrap())
    }

    fn cl100k() -> &'static Bpe {
        static B: OnceLock<Bpe> = OnceLock::new();
        B.get_or_init(|| Bpe::cl100k_base().unwrap())
    }

    fn both_agree(text: &str) {
        for (ours, name) in [(o200k(), "o200k_base"), (cl100k(), "cl100k_base")] {
            let theirs = tiktoken::get_encoding(name).unwrap();
            assert_eq!(
                ours.count(text),
                theirs.count(text),
                "{name} on {text:?} (encoded {:?})",
                theirs.encode(text)
            );
        }
    }

    #[test]
    fn counts_what_tiktoken_counts_on_the_guardians_corpora() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../guardians/testdata");
        let mut files = 0;
        let mut stack = vec![std::path::PathBuf::from(root)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(text) = std::fs::read_to_string(&path) {
                    files += 1;
                    both_agree(&text);
                    for line in text.lines().take(400) {
                        both_agree(line);
                    }
                }
            }
        }
        assert!(files >= 5, "the corpora are there: {files} files");
    }

    #[test]
    fn counts_what_tiktoken_counts_on_the_hard_cases() {
        let cases = [
            "",
            " ",
            "  ",
            "hello world",
            "hello  world",
            "hello   world",
            "a \n b",
            "  \n  x",
            "\n\n\n",
            "\r\n\r\n  \r\n",
            "x   ",
            "x \t\u{a0}\u{3000}y",
            "   1",
            "I'M here, you're THERE. They'LL see",
            "CamelCaseWordsAndHTTPServer",
            "naïve café – ÉCOLE déjà vu",
            "Привет, мир! ΑΒΓ αβγ",
            "日本語のテキストと中文文本",
            "emoji 👩‍💻 and flags 🇫🇷 ✨",
            "e\u{301}\u{301}\u{301} combining",
            "\u{200b}\u{200d}\u{feff} invisibles",
            ".\n/path/to/file.rs",
            "1234567890 12.5e-3 0x1F",
            "<|endoftext|> is text here",
            "-----------------------------------------------------------------------",
            "=========================================================================================",
            "!\n/x",
            "a.\r\n//b",
            "12٣4",
            "1٣",
            "it'ſ",
            "IT'ſ",
            "they'rē",
        ];
        for c in cases {
            both_agree(c);
        }
        // Pieces far past the short merge, each a single pre-token.
        both_agree(&"a".repeat(5000));
        both_agree(&"ab".repeat(3000));
        both_agree(&"!?".repeat(2000));
        both_agree(&" ".repeat(4000));
        both_agree(&format!("{}x", " ".repeat(4000)));
        both_agree(&"Supercalifragilisticexpialidocious".repeat(40));
        both_agree(&"ж".repeat(999));
    }

    /// Where ASCII decides, the scanner ends every piece where the regex does, from any start.
    fn scanner_agrees_with_regex(text: &str) {
        for bpe in [o200k(), cl100k()] {
            for (pos, _) in text.char_indices() {
                if let Some(end) = bpe.ascii_piece_end(text.as_bytes(), pos) {
                    let want = bpe.regex_piece_end(text, pos);
                    assert_eq!(end, want, "piece at {pos} of {text:?}");
                }
            }
        }
    }

    fn alphabet() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a", "e", "t", "s", "Z", "Q", "ing", "the", "'s", "'LL", "'", "1", "42", "2024", " ",
            "  ", "\t", "\n", "\r\n", "\u{a0}", "\u{3000}", ".", ",", "/", "!", "-", "_", "(",
            "\"", "é", "É", "ß", "ж", "Ж", "日", "本", "の", "ا", "🙂", "\u{301}", "\u{200d}",
            "http://", "{\"k\":", "</s>", "'re", "'Ve", "'d", "'M", "'ll", "\u{b}", "\u{c}",
            "\u{1f}", "\0", "ſ", "\u{212a}", "€", "—", "\u{85}", "ǅ", "ʰ", "٣", "Ⅻ",
        ]);
        prop::collection::vec(pieces, 0..60).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

        #[test]
        fn counts_what_tiktoken_counts_on_any_mix(text in alphabet()) {
            both_agree(&text);
            scanner_agrees_with_regex(&text);
        }

        #[test]
        fn counts_what_tiktoken_counts_on_arbitrary_text(text in any::<String>()) {
            both_agree(&text);
            scanner_agrees_with_regex(&text);
        }

        /// Long single pieces take the heap merge; the two merges must agree with the crate.
        #[test]
        fn long_pieces_merge_as_tiktoken_does(word in "[a-z]{65,300}", punct in "[-=*#.!?/]{65,200}") {
            both_agree(&word);
            both_agree(&punct);
            both_agree(&format!(" {word}"));
        }
    }

    #[test]
    fn the_vocabulary_is_a_third_of_the_crates() {
        let bytes = o200k().heap_bytes();
        assert!(bytes < 4 << 20, "o200k_base holds {bytes} bytes");
    }
}
