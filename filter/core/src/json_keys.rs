//! Substring searchers tuned for finding JSON keys in provider JSON.
//!
//! memchr's searcher looks for two "rare" bytes of the needle at once (SIMD) and verifies
//! each place where both occur. Its default idea of rare comes from general text, where `"`
//! is fairly rare; in JSON it is the most common byte, so for a key like `"content"` the
//! default picks the quotes and stops at almost every string in the event. Ranking JSON's
//! structural bytes as the most frequent makes it pick the key's letters instead.

use memchr::arch::all::packedpair::HeuristicFrequencyRank;
use memchr::memmem::{Finder, FinderBuilder};

/// Byte frequencies as seen in provider JSON: structure first, then English letters by
/// frequency, digits, everything else rare.
struct JsonRank;

/// Lowercase letters, most frequent first (English text, which is what keys and values are).
const LETTERS_BY_FREQUENCY: &[u8; 26] = b"etaoinsrhldcumfpgwybvkxjqz";

/// [`JsonRank`]'s ranks, built at compile time: memchr asks for the rank of every needle byte
/// each time a searcher is built, which is per response.
const RANKS: [u8; 256] = {
    let mut ranks = [60u8; 256];
    let mut b = 0u8;
    loop {
        ranks[b as usize] = match b {
            b'"' | b':' | b',' | b'{' | b'}' | b'[' | b']' | b' ' | b'\\' | b'\n' => 255,
            b'0'..=b'9' => 200,
            b'A'..=b'Z' | b'_' | b'-' | b'.' => 120,
            _ => 60,
        };
        if b == u8::MAX {
            break;
        }
        b += 1;
    }
    // 250 for 'e' down to 150 for 'z', 4 apart, most frequent first.
    let mut place = 0;
    while place < LETTERS_BY_FREQUENCY.len() {
        ranks[LETTERS_BY_FREQUENCY[place] as usize] = 250 - 4 * place as u8;
        place += 1;
    }
    ranks
};

impl HeuristicFrequencyRank for JsonRank {
    fn rank(&self, byte: u8) -> u8 {
        RANKS[usize::from(byte)]
    }
}

/// A forward searcher for `needle` (a quoted JSON key, usually) in JSON.
pub fn finder(needle: &[u8]) -> Finder<'static> {
    FinderBuilder::new().build_forward_with_ranker_owned(JsonRank, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_like_the_default_searcher_finds_them() {
        let json = br#"{"content":"x","text":"\"content\"","content" : "y","contents":1}"#;
        for key in [
            &b"\"content\""[..],
            b"\"text\"",
            b"\"contents\"",
            b"\"usage\"",
        ] {
            let ours: Vec<_> = finder(key).find_iter(json).collect();
            let default: Vec<_> = memchr::memmem::find_iter(json, key).collect();
            assert_eq!(ours, default, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn letters_rank_below_structure_and_rare_letters_lowest() {
        assert!(JsonRank.rank(b'z') < JsonRank.rank(b'e'));
        assert!(JsonRank.rank(b'e') < JsonRank.rank(b'"'));
        assert_eq!(JsonRank.rank(b'e'), 250);
        assert_eq!(JsonRank.rank(b'z'), 150);
    }
}
