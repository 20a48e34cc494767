//! The hash mode: Bitcoin-style difficulty on top of bit-exact artifacts.
//!
//! The network dropped hashing because GPU floating point is not reproducible bit for bit. With
//! the bit-exact golden model and conforming devices the artifact *is* reproducible, so a share
//! can be a hash of it, and validation is exact recomputation (mismatch threshold 0).
//!
//! Encoding of the hashed message (`docs/poc.md`):
//!
//! ```text
//! u32 LE length ‖ UTF-8 block_hash ‖ u32 LE length ‖ UTF-8 public_key ‖ u64 LE nonce ‖ artifact bytes
//! ```
//!
//! where the artifact bytes are the `k` f16 values, little-endian (the bytes `vector_b64`
//! encodes). `share = SHA-256(message)`; a share meets difficulty `D` when its first `D` bits are
//! zero (the digest read as a big-endian 256-bit number is below `2^(256−D)`).

use sha2::{Digest, Sha256};

use super::artifact::{decode_vector_b64, Artifact};

/// The name of this share encoding, recorded in outputs so a later revision can change it.
pub const SCHEME: &str = "pocforge-share-v1";

/// A SHA-256 digest.
pub type Digest32 = [u8; 32];

/// The message a share hashes (see the module documentation).
pub fn share_message(block_hash: &str, public_key: &str, artifact: &Artifact) -> Vec<u8> {
    let bytes = artifact.bytes();
    let mut m = Vec::with_capacity(16 + block_hash.len() + public_key.len() + bytes.len());
    for s in [block_hash, public_key] {
        m.extend_from_slice(&(s.len() as u32).to_le_bytes());
        m.extend_from_slice(s.as_bytes());
    }
    m.extend_from_slice(&artifact.nonce.to_le_bytes());
    m.extend_from_slice(&bytes);
    m
}

/// `SHA-256(share_message(…))`.
pub fn share_digest(block_hash: &str, public_key: &str, artifact: &Artifact) -> Digest32 {
    Sha256::digest(share_message(block_hash, public_key, artifact)).into()
}

/// Number of leading zero bits of a digest (256 for the all-zero digest).
pub fn leading_zero_bits(digest: &Digest32) -> u32 {
    let mut bits = 0;
    for &byte in digest {
        if byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

/// Whether a digest meets difficulty `difficulty` (leading zero bits ≥ difficulty).
pub fn meets_difficulty(digest: &Digest32, difficulty: u32) -> bool {
    leading_zero_bits(digest) >= difficulty
}

/// Lowercase hex of a digest.
pub fn hex(digest: &Digest32) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a submitted share is rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShareRejection {
    /// We computed no artifact for the nonce (its hidden state was not finite).
    #[error("nonce {0} has no artifact (its hidden state is not finite)")]
    NoArtifact(u64),
    /// The submitted vector differs from the recomputed one in at least one bit.
    #[error("nonce {0}: submitted vector differs from the recomputed artifact")]
    VectorDiffers(u64),
    /// The recomputed share does not meet the difficulty.
    #[error("nonce {nonce}: share has {bits} leading zero bits, difficulty is {difficulty}")]
    BelowDifficulty {
        /// The nonce.
        nonce: u64,
        /// Leading zero bits of its share.
        bits: u32,
        /// Required.
        difficulty: u32,
    },
}

/// Checks one submitted share exactly: the submitted vector must equal the recomputed artifact
/// bit for bit, and the share of the recomputed artifact must meet the difficulty.
pub fn check_share(
    block_hash: &str,
    public_key: &str,
    computed: Option<&Artifact>,
    nonce: u64,
    submitted_b64: &str,
    difficulty: u32,
) -> Result<Digest32, ShareRejection> {
    let computed = computed.ok_or(ShareRejection::NoArtifact(nonce))?;
    match decode_vector_b64(submitted_b64) {
        Ok(v) if v == computed.vector => {}
        _ => return Err(ShareRejection::VectorDiffers(nonce)),
    }
    let digest = share_digest(block_hash, public_key, computed);
    let bits = leading_zero_bits(&digest);
    if bits < difficulty {
        return Err(ShareRejection::BelowDifficulty {
            nonce,
            bits,
            difficulty,
        });
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_encoding_is_as_documented() {
        let a = Artifact {
            nonce: 0x0102,
            vector: vec![0x3C00],
        };
        let m = share_message("ab", "k", &a);
        assert_eq!(
            m,
            [2, 0, 0, 0, b'a', b'b', 1, 0, 0, 0, b'k', 2, 1, 0, 0, 0, 0, 0, 0, 0x00, 0x3C]
        );
        // SHA-256 of that message, computed independently with Python's hashlib:
        // hashlib.sha256(bytes([2,0,0,0,97,98,1,0,0,0,107,2,1,0,0,0,0,0,0,0,0x3c])).hexdigest()
        let digest = share_digest("ab", "k", &a);
        assert_eq!(
            hex(&digest),
            "8a780820cfbed4ab7a5450468078a97368b2446e15856359ae6101e5ed0692b6"
        );
    }

    #[test]
    fn leading_zero_bits_and_difficulty() {
        let mut d = [0xFFu8; 32];
        assert_eq!(leading_zero_bits(&d), 0);
        d[0] = 0;
        d[1] = 0x10;
        assert_eq!(leading_zero_bits(&d), 11);
        assert!(meets_difficulty(&d, 11) && !meets_difficulty(&d, 12));
        assert_eq!(leading_zero_bits(&[0; 32]), 256);
    }

    #[test]
    fn shares_are_checked_exactly() {
        let a = Artifact {
            nonce: 3,
            vector: vec![0x3C00, 0x0001],
        };
        let ok = check_share("b", "p", Some(&a), 3, &a.vector_b64(), 0).unwrap();
        assert_eq!(ok, share_digest("b", "p", &a));
        let off_by_one_ulp = Artifact {
            nonce: 3,
            vector: vec![0x3C00, 0x0002],
        };
        assert_eq!(
            check_share("b", "p", Some(&a), 3, &off_by_one_ulp.vector_b64(), 0),
            Err(ShareRejection::VectorDiffers(3))
        );
        assert!(matches!(
            check_share("b", "p", Some(&a), 3, &a.vector_b64(), 256),
            Err(ShareRejection::BelowDifficulty { .. })
        ));
        assert_eq!(
            check_share("b", "p", None, 3, "", 0),
            Err(ShareRejection::NoArtifact(3))
        );
    }
}
