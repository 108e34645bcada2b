//! The exact tool names of up to 16 bytes in a dispatch table, found with
//! two loads of the name, one multiplication and three compares.
//!
//! Tool names are short (`query`, `read_file`, `run_command`). A name of at
//! most 16 bytes is its length and two words read from its two ends,
//! overlapping when it is shorter ([`Key`]); together they hold every byte.
//! The table is open-addressed on a multiplicative hash of that key and
//! keeps the key itself, so a lookup neither hashes the name byte by byte
//! nor reads the stored name back to compare it: the general index
//! (`NameIndex`, for longer names) does both, and on a call that the lookup
//! alone decides that was most of the call's cost (BENCHMARKS.md,
//! fourteenth session).

use crate::program::Known;

/// Names longer than this go to the general index.
pub(crate) const MAX_LEN: usize = 16;

/// A name of at most [`MAX_LEN`] bytes as integers: its length and two
/// words that cover its bytes (8 to 16 bytes: the first and last 8; 4 to 7:
/// the first and last 4 in one word; fewer: the bytes in one word). Two
/// names of the same length with the same words are the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    len: u64,
    a: u64,
    b: u64,
}

/// A free slot (no name has this length).
const FREE: Key = Key {
    len: u64::MAX,
    a: 0,
    b: 0,
};

impl Key {
    #[inline(always)]
    fn of(name: &[u8]) -> Option<Key> {
        fn w8(s: &[u8], i: usize) -> u64 {
            s.get(i..i + 8)
                .and_then(|w| w.try_into().ok())
                .map_or(0, u64::from_le_bytes)
        }
        fn w4(s: &[u8], i: usize) -> u64 {
            s.get(i..i + 4)
                .and_then(|w| w.try_into().ok())
                .map_or(0, |w| u64::from(u32::from_le_bytes(w)))
        }
        let n = name.len();
        let (a, b) = match n {
            8..=MAX_LEN => (w8(name, 0), w8(name, n - 8)),
            4..=7 => (w4(name, 0) | w4(name, n - 4) << 32, 0),
            0..=3 => (name.iter().fold(0, |w, &c| w << 8 | u64::from(c)), 0),
            _ => return None,
        };
        Some(Key {
            len: n as u64,
            a,
            b,
        })
    }

    /// Where the key's probe starts in a table of `1 << (64 - shift)` slots.
    #[inline(always)]
    fn home(&self, shift: u32) -> usize {
        let mixed = self.a ^ self.b.rotate_left(29) ^ self.len.rotate_left(53);
        (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> shift) as usize
    }
}

/// The names of up to [`MAX_LEN`] bytes and their entries; at most half the
/// slots are taken, so a probe always ends at a free slot.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShortNames {
    slots: Vec<(Key, Known)>,
    /// `64 - log2(slots.len())`.
    shift: u32,
}

impl ShortNames {
    /// The table of `names` (each at most [`MAX_LEN`] bytes; a longer one,
    /// or a repeat of a name, is left out).
    pub fn new<'a>(names: impl ExactSizeIterator<Item = (&'a str, Known)>) -> ShortNames {
        let size = (2 * names.len()).next_power_of_two().max(4);
        let mut out = ShortNames {
            slots: vec![(FREE, Known::default()); size],
            shift: 64 - size.trailing_zeros(),
        };
        let mask = size - 1;
        for (name, known) in names {
            let Some(key) = Key::of(name.as_bytes()) else {
                continue;
            };
            let mut i = key.home(out.shift);
            while let Some(slot) = out.slots.get_mut(i) {
                if slot.0 == key {
                    break;
                }
                if slot.0 == FREE {
                    *slot = (key, known);
                    break;
                }
                i = (i + 1) & mask;
            }
        }
        out
    }

    /// `name`'s entry, if it is one of the table's names.
    #[inline(always)]
    pub fn get(&self, name: &str) -> Option<Known> {
        let key = Key::of(name.as_bytes())?;
        let mask = self.slots.len().wrapping_sub(1);
        let mut i = key.home(self.shift);
        loop {
            let (k, known) = self.slots.get(i)?;
            if *k == key {
                return Some(*known);
            }
            if k.len == FREE.len {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Every entry.
    pub fn known(&self) -> impl Iterator<Item = &Known> {
        self.slots
            .iter()
            .filter(|(k, _)| *k != FREE)
            .map(|(_, known)| known)
    }

    /// Every entry, to update.
    pub fn known_mut(&mut self) -> impl Iterator<Item = &mut Known> {
        self.slots
            .iter_mut()
            .filter(|(k, _)| *k != FREE)
            .map(|(_, known)| known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(list: u32) -> Known {
        Known {
            list,
            immediate: crate::fast::NO_RULE,
            plan: 0,
        }
    }

    /// Names that differ in one byte, in their length, or only where the
    /// two words overlap are told apart, at every length up to 16.
    #[test]
    fn every_name_is_found_and_no_other() {
        let base = "abcdefghijklmnop";
        let mut names: Vec<String> = Vec::new();
        for n in 0..=MAX_LEN {
            let name = &base[..n];
            names.push(name.to_string());
            for i in 0..n {
                let mut v = name.as_bytes().to_vec();
                v[i] = b'_';
                names.push(String::from_utf8(v).expect("ascii"));
            }
        }
        names.sort();
        names.dedup();
        // Half of them in the table, the other half must miss.
        let (inside, outside): (Vec<_>, Vec<_>) =
            names.iter().enumerate().partition(|(i, _)| i % 2 == 0);
        let t = ShortNames::new(inside.iter().map(|&(i, n)| (n.as_str(), known(i as u32))));
        for (i, n) in &inside {
            assert_eq!(t.get(n), Some(known(*i as u32)), "{n:?}");
        }
        for (_, n) in &outside {
            assert_eq!(t.get(n), None, "{n:?}");
        }
        assert_eq!(t.known().count(), inside.len());
        assert!(inside.len() > 60 && outside.len() > 60);
    }

    /// Keys are equal exactly when the names are (a brute force over short
    /// names from a small alphabet, which includes the zero byte).
    #[test]
    fn keys_are_equal_only_for_equal_names() {
        let alphabet: [&[u8]; 3] = [b"a", b"\0", b"b"];
        let mut names: Vec<Vec<u8>> = vec![Vec::new()];
        let mut frontier = names.clone();
        for _ in 0..5 {
            let mut next = Vec::new();
            for n in &frontier {
                for c in alphabet {
                    let mut m = n.clone();
                    m.extend_from_slice(c);
                    next.push(m);
                }
            }
            names.extend(next.iter().cloned());
            frontier = next;
        }
        // Long ones too: a 9..=16-byte stem with the same variations.
        let long: Vec<Vec<u8>> = names
            .iter()
            .filter(|n| n.len() >= 3)
            .map(|n| [b"0123456789ab".as_slice(), n].concat())
            .filter(|n| n.len() <= MAX_LEN)
            .collect();
        names.extend(long);
        let keys: Vec<Key> = names.iter().map(|n| Key::of(n).expect("short")).collect();
        let mut seen = std::collections::HashMap::new();
        for (n, k) in names.iter().zip(&keys) {
            if let Some(other) = seen.insert((k.len, k.a, k.b), n) {
                assert_eq!(other, n, "two names, one key");
            }
        }
        assert_eq!(names.len(), 364 + 108, "up to 5 bytes, and 15 to 16");
        assert_eq!(Key::of(&[b'x'; MAX_LEN + 1]), None);
    }

    /// 10,000 names like a synthetic policy's: all found, at most half the
    /// slots taken, a miss ends at a free slot.
    #[test]
    fn a_large_table_stays_half_empty() {
        let names: Vec<String> = (0..10_000).map(|i| format!("tool_{i}")).collect();
        let t = ShortNames::new(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), known(i as u32))),
        );
        for (i, n) in names.iter().enumerate() {
            assert_eq!(t.get(n).map(|k| k.list), Some(i as u32));
        }
        assert_eq!(t.slots.len(), 32_768);
        assert_eq!(t.get("tool_10000"), None);
        assert_eq!(t.get("not_a_tool"), None);
        let empty = ShortNames::new(std::iter::empty());
        assert_eq!(empty.get("x"), None);
    }
}
