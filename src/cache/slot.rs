//! Keys as the in-memory store holds them: packed into two words when short,
//! hashed once under the store's seed, compared without `memcmp`.

use std::hash::{BuildHasher, Hash, Hasher};

use quick_cache::Equivalent;

/// A key as the store holds it: its hash, computed once, and its bytes,
/// held in two words when it has at most 16 (integers, short strings).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) hash: u64,
    bytes: Packed,
}

/// Key bytes: up to 16 in two little-endian words padded with zeros, so two
/// keys compare in three word comparisons; longer ones on the heap.
#[derive(Clone, PartialEq, Eq)]
enum Packed {
    Short { len: u8, words: [u64; 2] },
    Long(Box<[u8]>),
}

impl Hash for Slot {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// The key of a lookup: its hash and its bytes, packed as a [`Slot`] does.
pub(crate) struct Probe<'a> {
    pub(crate) hash: u64,
    bytes: ProbeBytes<'a>,
}

enum ProbeBytes<'a> {
    Short { len: u8, words: [u64; 2] },
    Long(&'a [u8]),
}

impl Hash for Probe<'_> {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Equivalent<Slot> for Probe<'_> {
    #[inline]
    fn equivalent(&self, slot: &Slot) -> bool {
        self.hash == slot.hash
            && match (&self.bytes, &slot.bytes) {
                (ProbeBytes::Short { len, words }, Packed::Short { len: l, words: w }) => {
                    len == l && words == w
                }
                (ProbeBytes::Long(a), Packed::Long(b)) => *a == &b[..],
                _ => false,
            }
    }
}

/// Reads `N` bytes of `s` from `at`, or zeros (never: callers check lengths).
#[inline]
fn word<const N: usize>(s: &[u8], at: usize) -> [u8; N] {
    s.get(at..at + N)
        .and_then(|w| <[u8; N]>::try_from(w).ok())
        .unwrap_or([0; N])
}

/// Packs up to 16 bytes into two little-endian words padded with zeros,
/// with overlapping loads instead of a byte-by-byte copy.
#[inline]
fn pack(b: &[u8]) -> Option<[u64; 2]> {
    let n = b.len();
    // Shifts out the bytes an overlapping load read twice.
    let tail = |w: u64, extra: usize| w.checked_shr(8 * extra as u32).unwrap_or(0);
    Some(match n {
        8..=16 => [
            u64::from_le_bytes(word(b, 0)),
            tail(u64::from_le_bytes(word(b, n - 8)), 16 - n),
        ],
        4..=7 => {
            let lo = u64::from(u32::from_le_bytes(word(b, 0)));
            let hi = u64::from(u32::from_le_bytes(word(b, n - 4)));
            [lo | tail(hi, 8 - n) << 32, 0]
        }
        1..=3 => [
            u64::from(b[0])
                | u64::from(b[n / 2]) << (8 * (n / 2))
                | u64::from(b[n - 1]) << (8 * (n - 1)),
            0,
        ],
        0 => [0, 0],
        _ => return None,
    })
}

/// Mixes two words into one, with a 64 x 64 -> 128-bit multiply folded in
/// half (the core step of foldhash and wyhash).
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

/// Odd constants (digits of pi) that keep seeded words from being zero.
const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;

/// Hashes packed key words under the store's seed.
#[inline]
fn hash_words(seed: u64, len: u8, [a, b]: [u64; 2]) -> u64 {
    fold(fold(a ^ seed, b ^ K0 ^ u64::from(len)), seed ^ K1)
}

impl Slot {
    /// The key bytes, for the weigher.
    pub(crate) fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match &self.bytes {
            Packed::Short { len, words } => {
                let mut buf = [0u8; 16];
                buf[..8].copy_from_slice(&words[0].to_le_bytes());
                buf[8..].copy_from_slice(&words[1].to_le_bytes());
                f(&buf[..usize::from(*len)])
            }
            Packed::Long(b) => f(b),
        }
    }
}

/// Hands `quick_cache` the hash a [`Slot`] or [`Probe`] carries.
#[derive(Clone, Copy, Default)]
pub(crate) struct PassHash;

impl BuildHasher for PassHash {
    type Hasher = Passed;

    #[inline]
    fn build_hasher(&self) -> Passed {
        Passed(0)
    }
}

pub(crate) struct Passed(u64);

impl Hasher for Passed {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is ever called (by `Slot` and `Probe`); mix
        // anything else in rather than drop it.
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }
}

impl<'a> Probe<'a> {
    /// The probe of a key: its bytes packed and hashed under `seed` (keys
    /// over 16 bytes with seeded xxh3).
    #[inline]
    pub(crate) fn new(bytes: &'a [u8], seed: u64) -> Probe<'a> {
        match pack(bytes) {
            Some(words) => {
                let len = bytes.len() as u8;
                Probe {
                    hash: hash_words(seed, len, words),
                    bytes: ProbeBytes::Short { len, words },
                }
            }
            None => Probe {
                hash: xxhash_rust::xxh3::xxh3_64_with_seed(bytes, seed),
                bytes: ProbeBytes::Long(bytes),
            },
        }
    }

    /// The key as the store keeps it.
    pub(crate) fn to_slot(&self) -> Slot {
        Slot {
            hash: self.hash,
            bytes: match self.bytes {
                ProbeBytes::Short { len, words } => Packed::Short { len, words },
                ProbeBytes::Long(b) => Packed::Long(b.into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn same(a: &[u8], b: &[u8]) -> bool {
        Probe::new(a, 42).equivalent(&Probe::new(b, 42).to_slot())
    }

    #[test]
    fn keys_of_every_length_find_themselves_and_no_other() {
        let keys: Vec<Vec<u8>> = (0..=40u8).map(|n| (0..n).collect()).collect();
        for a in &keys {
            for b in &keys {
                assert_eq!(same(a, b), a == b, "{a:?} vs {b:?}");
            }
            // A trailing zero byte is not padding.
            let mut padded = a.clone();
            padded.push(0);
            assert!(!same(a, &padded), "{a:?}");
            let slot = Probe::new(a, 42).to_slot();
            slot.with_bytes(|bytes| assert_eq!(bytes, &a[..]));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn probes_match_exactly_the_equal_keys(
            a in proptest::collection::vec(any::<u8>(), 0..24),
            b in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            prop_assert_eq!(same(&a, &b), a == b);
            prop_assert!(same(&a, &a));
            // Equal keys hash alike under one seed.
            prop_assert_eq!(Probe::new(&a, 9).hash, Probe::new(&a.clone(), 9).hash);
        }
    }
}
