//! Byte-level scanning helpers shared by the detectors: finding the few places worth a regex
//! without looking at every byte.

/// The maximal runs of bytes in `class` that are at least `min` long, in order. Such a run covers
/// a multiple of `min`, so only every `min`-th byte is looked at outside runs; and a probe that
/// lands in a short run (a word of prose) looks at the run's `min`-th byte before walking it.
pub(crate) fn runs<'a>(
    bytes: &'a [u8],
    class: impl Fn(u8) -> bool + 'a,
    min: usize,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let n = bytes.len();
    let min = min.max(1);
    let mut probe = min - 1;
    std::iter::from_fn(move || {
        while probe < n {
            if !class(bytes[probe]) {
                probe += min;
                continue;
            }
            let mut s = probe;
            while s > 0 && class(bytes[s - 1]) {
                s -= 1;
            }
            // A long run holds its `min`-th byte. If that byte is outside the class, this run is
            // short, and so is any later run that starts before the byte (it would hold it):
            // the next long run starts after it.
            let last = s + min - 1;
            if last >= n || !class(bytes[last]) {
                probe = last + min;
                continue;
            }
            let mut e = probe + 1;
            while e < n && class(bytes[e]) {
                e += 1;
            }
            // The next run starts after `e`; probe the first position that could end one there.
            probe = e + min;
            if e - s >= min {
                return Some((s, e));
            }
        }
        None
    })
}

/// The maximal runs of `class` around each anchor (a match of `len` bytes starting at each
/// position of `anchors`, in order), each run once: cheaper than walking every run of the class
/// when the anchor is rare in text (`%`, `:`, `20`).
pub(crate) fn runs_around<'a>(
    bytes: &'a [u8],
    anchors: impl Iterator<Item = usize> + 'a,
    len: usize,
    class: impl Fn(u8) -> bool + 'a,
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let mut done = 0;
    anchors.filter_map(move |p| {
        if p < done {
            return None;
        }
        let mut s = p;
        while s > 0 && class(bytes[s - 1]) {
            s -= 1;
        }
        let mut e = p + len;
        while e < bytes.len() && class(bytes[e]) {
            e += 1;
        }
        done = e;
        Some((s, e))
    })
}

/// The position of the first ASCII digit at or after `from`, eight bytes at a time.
pub(crate) fn next_digit(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let n = bytes.len();
    let mut i = from;
    while i + 8 <= n {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i..i + 8]);
        // '0'..='9' become 0..=9 and every other byte 10 or more; then "is some byte below 10".
        // A borrow can mark a byte above a digit, never one below the first: the lowest mark
        // is the first digit.
        let x = u64::from_le_bytes(w) ^ (ONES * 0x30);
        let marks = x.wrapping_sub(ONES * 10) & !x & HIGH;
        if marks != 0 {
            return Some(i + marks.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    (i..n).find(|&k| bytes[k].is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_found_wherever_they_are() {
        let text: Vec<u8> = (0u8..=255).filter(|b| !b.is_ascii_digit()).collect();
        assert_eq!(next_digit(&text, 0), None);
        for pos in 0..text.len() {
            for d in b'0'..=b'9' {
                let mut t = text.clone();
                t[pos] = d;
                assert_eq!(next_digit(&t, 0), Some(pos));
                assert_eq!(next_digit(&t, pos + 1), None);
            }
        }
    }

    #[test]
    fn next_digit_matches_a_plain_scan_from_every_start() {
        // Digits next to ':' (one above '9') and '/' (one below '0'), and bytes whose
        // subtraction borrows, at every alignment.
        let text: Vec<u8> = b"ab:9:/0/:x12 3\xff0\x80:1a/:/:/:/8::9".repeat(5);
        for from in 0..=text.len() {
            let want = (from..text.len()).find(|&k| text[k].is_ascii_digit());
            assert_eq!(next_digit(&text, from), want, "from {from}");
        }
    }

    /// The runs of at least `min` bytes of `class`, one byte at a time.
    fn plain_runs(text: &[u8], class: impl Fn(u8) -> bool, min: usize) -> Vec<(usize, usize)> {
        let mut want = Vec::new();
        let mut i = 0;
        while i < text.len() {
            let s = i;
            while i < text.len() && class(text[i]) {
                i += 1;
            }
            if i - s >= min.max(1) {
                want.push((s, i));
            }
            i += 1;
        }
        want
    }

    #[test]
    fn runs_match_a_plain_scan_on_random_texts() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let class = |b: u8| b != b' ';
        for _ in 0..20_000 {
            // Runs of every length, mostly short ones, as in prose.
            let len = rng.random_range(0..120);
            let space = rng.random_range(2..12);
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.random_range(0..space) == 0 {
                        b' '
                    } else {
                        b'a'
                    }
                })
                .collect();
            for min in 0..30 {
                let got: Vec<_> = runs(&text, class, min).collect();
                assert_eq!(got, plain_runs(&text, class, min), "{min} {text:?}");
            }
        }
    }

    #[test]
    fn runs_match_a_plain_scan() {
        let text = b"ab 0123456789abcdef0123456789 x yyyyyyyyyyyy zzzzzzzzzzzzzzzzzzzzzzzzz-";
        for min in 1..30 {
            let class = |b: u8| b.is_ascii_alphanumeric();
            let got: Vec<_> = runs(text, class, min).collect();
            assert_eq!(got, plain_runs(text, class, min), "min {min}");
        }
    }
}
