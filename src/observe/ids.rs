//! Ids: trace and span ids drawn from a per-thread generator seeded by the OS, and request ids
//! (kept when the client sent a sane one).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;

thread_local! {
    /// One generator per thread: no lock and no syscall per id. Ids need to be unique, not secret.
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

/// A random u64 (never 0, which W3C reserves as invalid).
pub fn random_u64() -> u64 {
    RNG.with(|r| loop {
        let v: u64 = r.borrow_mut().random();
        if v != 0 {
            return v;
        }
    })
}

/// Whether an event of probability `p` happens now.
pub fn chance(p: f64) -> bool {
    if p >= 1.0 {
        return true;
    }
    if p <= 0.0 {
        return false;
    }
    RNG.with(|r| r.borrow_mut().random::<f64>() < p)
}

/// A new trace id (16 bytes, not all zero).
pub fn trace_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&random_u64().to_be_bytes());
    id[8..].copy_from_slice(&random_u64().to_be_bytes());
    id
}

/// A new span id (8 bytes, not all zero).
pub fn span_id() -> [u8; 8] {
    random_u64().to_be_bytes()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The two hex digits of every byte: one lookup per byte instead of two shifts, two masks and two
/// lookups (a request id's 16 bytes took ~130 instructions, this about half).
static HEX_PAIRS: [[u8; 2]; 256] = {
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [HEX[i >> 4], HEX[i & 15]];
        i += 1;
    }
    t
};

/// Lowercase hex of `bytes` into `out` (twice as long).
pub fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[*b as usize]);
    }
}

/// Lowercase hex of 16 bytes.
pub fn hex16(bytes: &[u8; 16]) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex_into(bytes, &mut out);
    out
}

/// Lowercase hex of 8 bytes.
pub fn hex8(bytes: &[u8; 8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    hex_into(bytes, &mut out);
    out
}

/// Bytes of lowercase or uppercase hex, or `None`.
pub fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Longest request id kept from a client.
const MAX_REQUEST_ID: usize = 128;

/// Whether a client's request id can be kept: 1–128 characters of letters, digits and
/// `-_.:/+=@`, so it is safe in a log line, a JSON string and a header unchanged.
pub fn sane_request_id(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_REQUEST_ID
        && v.iter().all(|&c| c.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&c))
}

/// A new request id: 32 hex characters (128 random bits).
pub fn new_request_id() -> [u8; 32] {
    hex16(&trace_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        assert_eq!(&hex8(&[0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff]), b"00017f80abcdefff");
        let id = trace_id();
        assert_eq!(unhex::<16>(&hex16(&id)), Some(id));
        assert_eq!(unhex::<8>(b"00f067aa0ba902b7"), Some([0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]));
        assert_eq!(unhex::<8>(b"00f067aa0ba902bz"), None);
        assert_eq!(unhex::<8>(b"00f0"), None);
    }

    #[test]
    fn request_ids_from_clients_are_kept_only_when_sane() {
        assert!(sane_request_id(b"a1b2-c3d4"));
        assert!(sane_request_id(b"req:42/7@edge"));
        assert!(!sane_request_id(b""));
        assert!(!sane_request_id(b"has space"));
        assert!(!sane_request_id(b"quote\"inside"));
        assert!(!sane_request_id(&[b'a'; 129]));
    }

    #[test]
    fn chance_is_exact_at_the_bounds() {
        assert!((0..100).all(|_| chance(1.0)));
        assert!((0..100).all(|_| !chance(0.0)));
    }
}
