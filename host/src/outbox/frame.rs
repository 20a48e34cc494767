//! The on-disk framing shared by the outbox's segment and acknowledgement files.
//!
//! A file starts with an 8-byte magic naming its kind and version, then holds frames:
//! `len: u32 LE | crc32(payload): u32 LE | payload (len bytes)`. A writer appends a frame and
//! fsyncs; a crash can leave at most the last frame incomplete or with a wrong CRC (a *torn
//! tail*), which recovery detects and truncates.

use std::fs::File;
use std::io::{Read, Write};

/// Size of the frame header (length and CRC).
pub const HEADER: usize = 8;
/// Largest payload a reader accepts: anything bigger is corruption, not a record.
pub const MAX_PAYLOAD: usize = 1 << 30;

/// Encodes one frame.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// The frames of a file's content after its magic, and where the valid prefix ends.
pub struct Scan<'a> {
    /// Payloads of the valid frames, in order, each with its offset in the file.
    pub frames: Vec<(u64, &'a [u8])>,
    /// File offset just past the last valid frame (where a torn tail starts, if any).
    pub valid_len: u64,
    /// Whether bytes follow the valid prefix (a torn or corrupt tail).
    pub torn: bool,
}

/// Splits `content` (a whole file) into frames, stopping at the first incomplete or corrupt one.
/// Returns `None` when the magic is wrong (not our file, or a different version).
pub fn scan<'a>(content: &'a [u8], magic: &[u8; 8]) -> Option<Scan<'a>> {
    if content.len() < magic.len() {
        // A file cut before its magic was fully written: empty, torn at offset 0.
        return Some(Scan {
            frames: Vec::new(),
            valid_len: 0,
            torn: !content.is_empty(),
        });
    }
    if &content[..magic.len()] != magic {
        return None;
    }
    let mut at = magic.len();
    let mut frames = Vec::new();
    while content.len() - at >= HEADER {
        let len = u32::from_le_bytes(content[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(content[at + 4..at + 8].try_into().expect("4 bytes"));
        if len > MAX_PAYLOAD || content.len() - at - HEADER < len {
            break;
        }
        let payload = &content[at + HEADER..at + HEADER + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        frames.push((at as u64, payload));
        at += HEADER + len;
    }
    Some(Scan {
        frames,
        valid_len: at as u64,
        torn: at != content.len(),
    })
}

/// Reads a whole file.
pub fn read_all(file: &mut File) -> std::io::Result<Vec<u8>> {
    let mut content = Vec::new();
    file.read_to_end(&mut content)?;
    Ok(content)
}

/// Appends `frame` and makes it durable before returning.
pub fn append_durably(file: &mut File, frame: &[u8]) -> std::io::Result<()> {
    file.write_all(frame)?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8; 8] = b"TESTMAG1";

    fn file_of(frames: &[&[u8]]) -> Vec<u8> {
        let mut content = MAGIC.to_vec();
        for f in frames {
            content.extend(encode(f));
        }
        content
    }

    #[test]
    fn frames_round_trip() {
        let content = file_of(&[b"one", b"", b"three"]);
        let scan = scan(&content, MAGIC).unwrap();
        let payloads: Vec<&[u8]> = scan.frames.iter().map(|f| f.1).collect();
        assert_eq!(payloads, [&b"one"[..], b"", b"three"]);
        assert!(!scan.torn);
        assert_eq!(scan.valid_len, content.len() as u64);
    }

    #[test]
    fn every_truncation_keeps_the_valid_prefix() {
        let content = file_of(&[b"alpha", b"beta"]);
        let first_end = (MAGIC.len() + HEADER + 5) as u64;
        for cut in 0..content.len() {
            let scan = scan(&content[..cut], MAGIC).unwrap();
            let expected = if cut as u64 >= first_end { 1 } else { 0 };
            assert_eq!(scan.frames.len(), expected, "cut at {cut}");
            assert_eq!(scan.torn, cut as u64 != scan.valid_len);
        }
    }

    #[test]
    fn a_flipped_bit_ends_the_valid_prefix() {
        let mut content = file_of(&[b"alpha", b"beta"]);
        let last = content.len() - 1;
        content[last] ^= 0x10;
        let scan = scan(&content, MAGIC).unwrap();
        assert_eq!(scan.frames.len(), 1);
        assert!(scan.torn);
    }

    #[test]
    fn wrong_magic_is_refused() {
        assert!(scan(b"OTHERMAGxxxx", MAGIC).is_none());
    }
}
