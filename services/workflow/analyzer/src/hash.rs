//! Hasher for step-id maps.
//!
//! Profiling showed std's SipHash dominating analysis time on large workflows, so id maps use a
//! folded-multiply hash (the construction of foldhash and wyhash), several times faster on short
//! ids. Its keys come from std's randomly seeded `RandomState` per map, so colliding ids cannot be
//! precomputed, and `Limits::max_steps` bounds what a collision flood could cost in any case.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};

/// A map keyed by step id.
pub(crate) type IdMap<'a, V> = HashMap<&'a str, V, IdHashing>;

/// Creates an empty [`IdMap`] with room for `capacity` ids.
pub(crate) fn id_map<'a, V>(capacity: usize) -> IdMap<'a, V> {
    HashMap::with_capacity_and_hasher(capacity, IdHashing::new())
}

/// Per-map random keys.
#[derive(Clone)]
pub(crate) struct IdHashing {
    seed: u64,
    multiplier: u64,
}

impl IdHashing {
    fn new() -> Self {
        let random = RandomState::new();
        Self {
            seed: random.hash_one(0x243f_6a88_85a3_08d3_u64),
            multiplier: random.hash_one(0x1319_8a2e_0370_7344_u64) | 1,
        }
    }
}

impl BuildHasher for IdHashing {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher {
            state: self.seed,
            multiplier: self.multiplier,
        }
    }
}

/// Hasher state for one key.
pub(crate) struct IdHasher {
    state: u64,
    multiplier: u64,
}

impl IdHasher {
    fn mix(&mut self, word: u64) {
        self.state = folded_multiply(self.state ^ word, self.multiplier);
    }
}

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.mix(u64::from_le_bytes(chunk.try_into().unwrap_or_default()));
        }
        let rest = chunks.remainder();
        // Byte by byte rather than copy_from_slice: a variable-length copy compiles to a libc
        // memcpy call, which profiling showed costing more than the hashing itself.
        let mut last = 0u64;
        for (k, &byte) in rest.iter().enumerate() {
            last |= u64::from(byte) << (8 * k);
        }
        // The remainder is at most 7 bytes, so the top byte is free to record its length; without
        // it "ab" and "ab\0" would pad to the same word.
        self.mix(last | ((rest.len() as u64) << 56));
    }

    fn write_u8(&mut self, byte: u8) {
        // `str` hashes as its bytes plus a 0xff terminator; mixing that directly skips `write`.
        self.mix(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        folded_multiply(self.state, 0x9e37_79b9_7f4a_7c15)
    }
}

/// Full 128-bit product folded to 64 bits, so high input bits influence low output bits.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn distinct_short_ids_hash_apart() {
        let hashing = IdHashing::new();
        let mut ids: Vec<String> = (0..20_000).map(|i| format!("s{i}")).collect();
        ids.extend(["", "a", "a\0", "ab", "ab\0", "abcdefgh", "abcdefgh\0"].map(str::to_owned));
        let hashes: HashSet<u64> = ids.iter().map(|id| hashing.hash_one(id.as_str())).collect();
        assert_eq!(hashes.len(), ids.len());
    }

    #[test]
    fn maps_find_what_they_store() {
        let ids: Vec<String> = (0..1000).map(|i| format!("step-{i}")).collect();
        let mut map = id_map(ids.len());
        for (i, id) in ids.iter().enumerate() {
            map.insert(id.as_str(), i);
        }
        assert!(ids.iter().enumerate().all(|(i, id)| map.get(id.as_str()) == Some(&i)));
        assert_eq!(map.get("missing"), None);
    }
}
