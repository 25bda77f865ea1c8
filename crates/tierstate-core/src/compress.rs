//! Large state and document bodies are stored zstd-compressed, transparently: the checksum is
//! always over the uncompressed canonical JSON, and a read decompresses before checking it,
//! so damage to either form is an `Integrity` error. A stored body is compressed exactly when
//! it starts with zstd's frame magic, which canonical JSON never does.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::MAX_STATE_BYTES;

/// Bodies longer than this many bytes are stored compressed unless [`set_threshold`] says
/// otherwise. Chosen by `cargo xtask bench` (docs/benchmarks.md): at 16 KiB a portfolio body
/// stores 6× smaller for about 50 µs per write; larger bodies gain more than they pay.
pub const DEFAULT_THRESHOLD: usize = 16 * 1024;

/// zstd's level: its fastest that still compresses JSON well (level 1 is ~2× the speed of 3
/// for a few percent more bytes).
const LEVEL: i32 = 1;

/// The first four bytes of every zstd frame.
const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

static THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_THRESHOLD);

/// Sets, for this process, the body length above which new writes are compressed
/// (`usize::MAX`: never). Reads always understand both forms, so changing it is always safe.
pub fn set_threshold(bytes: usize) {
    THRESHOLD.store(bytes, Ordering::Relaxed);
}

/// The body length above which new writes are compressed.
pub fn threshold() -> usize {
    THRESHOLD.load(Ordering::Relaxed)
}

/// The bytes to store for canonical `body`: compressed when it is longer than the threshold
/// and compression makes it shorter, otherwise `body` itself.
pub fn pack(body: Vec<u8>) -> Vec<u8> {
    if body.len() <= threshold() {
        return body;
    }
    match zstd::bulk::compress(&body, LEVEL) {
        Ok(packed) if packed.len() < body.len() => packed,
        _ => body,
    }
}

/// The canonical body of stored bytes: decompressed if they are a zstd frame (never to more
/// than the largest body a write accepts), otherwise the bytes themselves.
///
/// # Errors
/// Why a compressed body cannot be read back, for the caller's `Integrity` error.
pub fn unpack(stored: &[u8]) -> Result<Cow<'_, [u8]>, String> {
    if !is_packed(stored) {
        return Ok(Cow::Borrowed(stored));
    }
    zstd::bulk::decompress(stored, MAX_STATE_BYTES)
        .map(Cow::Owned)
        .map_err(|e| format!("compressed body does not decompress: {e}"))
}

/// Whether stored bytes are a compressed body.
pub fn is_packed(stored: &[u8]) -> bool {
    stored.starts_with(&MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(n: usize) -> Vec<u8> {
        let mut s = String::from("{\"rows\":[");
        let mut i = 0;
        while s.len() < n {
            s.push_str(&format!("{{\"id\":{i},\"px\":\"{}.25\"}},", 1000 + i % 7));
            i += 1;
        }
        s.pop();
        s.push_str("]}");
        s.into_bytes()
    }

    #[test]
    fn small_bodies_are_stored_as_they_are_and_large_ones_round_trip() {
        let small = body(100);
        assert_eq!(pack(small.clone()), small);
        assert_eq!(unpack(&small).unwrap().as_ref(), small.as_slice());

        let large = body(200_000);
        let packed = pack(large.clone());
        assert!(is_packed(&packed));
        assert!(
            packed.len() * 4 < large.len(),
            "{} of {}",
            packed.len(),
            large.len()
        );
        assert_eq!(unpack(&packed).unwrap().as_ref(), large.as_slice());
    }

    #[test]
    fn a_damaged_frame_is_an_error_not_a_panic() {
        let packed = pack(body(100_000));
        for at in [4, 10, packed.len() / 2, packed.len() - 1] {
            let mut bad = packed.clone();
            bad[at] ^= 0x40;
            // Either the frame fails, or it yields other bytes (which the checksum catches).
            if let Ok(b) = unpack(&bad) {
                assert_ne!(b.as_ref(), body(100_000).as_slice());
            }
        }
        assert!(unpack(&packed[..packed.len() / 2]).is_err(), "a torn frame");
    }

    #[test]
    fn canonical_json_never_looks_compressed() {
        // Canonical bodies are JSON objects: they start with '{'.
        assert!(!is_packed(b"{\"a\":1}"));
    }
}
