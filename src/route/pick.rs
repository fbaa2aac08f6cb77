//! Choosing a color for one request. Pure functions over the route and the request; no I/O.
//!
//! Without a sticky key the split is *exact*: request n of a service maps to bucket
//! `n × 6181 mod 10 000`, a permutation of the buckets (6181 is coprime with 10 000 and close to
//! 10 000/φ, so consecutive requests spread evenly). Every 10 000 consecutive requests therefore
//! send exactly `weight` of them to green, and short runs stay close to it.
//! With a sticky key the bucket is a fixed, seedless hash of the key, so a client keeps its color
//! across requests, restarts and replicas, and raising the weight only moves clients blue → green.

use super::Weight;
use crate::Color;

const BUCKETS: u64 = 10_000;
const STRIDE: u64 = 6_181;

/// Bucket of the n-th unkeyed request.
pub fn sequence_bucket(n: u64) -> u16 {
    ((n % BUCKETS) * STRIDE % BUCKETS) as u16
}

/// Bucket of a sticky key: a fixed, seedless 64-bit hash that eats eight bytes per step (a long
/// `Authorization` header costs a few nanoseconds, not one multiply per byte), finished with
/// murmur3's fmix64. Written out rather than taken from a hashing crate on purpose: assignment
/// must survive restarts, replicas and dependency upgrades, and crates change their algorithms
/// across major versions. `key_bucket_is_pinned` fails if it ever changes.
pub fn key_bucket(key: &[u8]) -> u16 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (key.len() as u64).wrapping_mul(K);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("chunks_exact yields 8 bytes"));
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    let rest = chunks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h % BUCKETS) as u16
}

/// Green when the bucket falls under the weight.
pub fn color_for(bucket: u16, weight: Weight) -> Color {
    if bucket < weight.bp() {
        Color::Green
    } else {
        Color::Blue
    }
}

/// Parses a force-header value: `green`/`blue`, or with a token `green:<token>`. A wrong or
/// missing token forces nothing (the request is routed as if the header were absent).
pub fn forced(value: &[u8], token: Option<&str>) -> Option<Color> {
    let value = match token {
        None => value,
        Some(t) => {
            let colon = value.iter().position(|&b| b == b':')?;
            if !constant_time_eq(&value[colon + 1..], t.as_bytes()) {
                return None;
            }
            &value[..colon]
        }
    };
    if value.eq_ignore_ascii_case(b"green") {
        Some(Color::Green)
    } else if value.eq_ignore_ascii_case(b"blue") {
        Some(Color::Blue)
    } else {
        None
    }
}

/// Compares without an early exit, so response timing does not reveal how much of a guessed
/// token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        (pair[..eq].trim_ascii() == name).then(|| pair[eq + 1..].trim_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: [u16; 4] = [1460, 7761, 7528, 9674];

    #[test]
    fn every_ten_thousand_requests_split_exactly() {
        let w = Weight::from_percent(10.0).unwrap();
        for start in [0u64, 17, 9_999, 123_456] {
            let green = (start..start + 10_000).filter(|&n| color_for(sequence_bucket(n), w) == Color::Green).count();
            assert_eq!(green, 1000);
        }
    }

    #[test]
    fn short_runs_stay_close_to_the_weight() {
        let w = Weight::from_percent(10.0).unwrap();
        let green = (0..100u64).filter(|&n| color_for(sequence_bucket(n), w) == Color::Green).count();
        assert!((8..=12).contains(&green), "{green}");
    }

    #[test]
    fn sticky_bucket_is_stable_and_spread() {
        assert_eq!(key_bucket(b"user-1"), key_bucket(b"user-1"));
        let w = Weight::from_percent(30.0).unwrap();
        let green =
            (0..10_000).filter(|i| color_for(key_bucket(format!("k{i}").as_bytes()), w) == Color::Green).count();
        assert!((2_800..=3_200).contains(&green), "{green}");
    }

    #[test]
    fn key_bucket_is_pinned() {
        let got: Vec<u16> =
            [&b""[..], b"user-1", b"Bearer eyJhbGciOiJIUzI1NiJ9.payload-of-a-token.signature", b"\x7f\0\0\x01"]
                .iter()
                .map(|k| key_bucket(k))
                .collect();
        assert_eq!(got, PINNED, "changing the sticky hash moves clients between colors");
    }

    #[test]
    fn cookie_is_found_among_others() {
        assert_eq!(cookie(b"a=1; sid=xyz ; b=2", b"sid"), Some(&b"xyz"[..]));
        assert_eq!(cookie(b"a=1", b"sid"), None);
    }

    #[test]
    fn force_values_are_case_insensitive() {
        assert_eq!(forced(b"GREEN", None), Some(Color::Green));
        assert_eq!(forced(b"blue", None), Some(Color::Blue));
        assert_eq!(forced(b"red", None), None);
    }

    #[test]
    fn a_token_must_match_exactly() {
        assert_eq!(forced(b"green:s3cret", Some("s3cret")), Some(Color::Green));
        assert_eq!(forced(b"green:s3cre", Some("s3cret")), None);
        assert_eq!(forced(b"green", Some("s3cret")), None);
        assert_eq!(forced(b"green:s3cret", None), None);
    }
}
