//! The seeded inputs of one PoC round: input embeddings, layer reflections, the k-pick and the
//! rotation vectors, with the network's seed strings.

use super::math;
use super::rng::{mix, normal, normal_into, seed32, seed32x8};

/// Which generator fills the input embeddings (the network offers both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EmbeddingRng {
    /// One stream: `normal(seed32("{block_hash}_{public_key}_nonce{nonce}"), S·d)`.
    #[default]
    Single,
    /// "Stronger RNG": the 32 SHA-256 bytes of the same string as 8 big-endian `u32` seeds, seed
    /// `w` filling the `w`-th consecutive segment of `ceil(S·d/8)` values (the last one shorter).
    Split8,
}

impl EmbeddingRng {
    /// The name used in options and vector manifests.
    pub const fn name(self) -> &'static str {
        match self {
            EmbeddingRng::Single => "single",
            EmbeddingRng::Split8 => "split8",
        }
    }
}

/// The order in which the `k` picked coordinates enter the rotation.
///
/// The rotation that follows is not invariant under a reordering, so the order is part of the
/// artifact. The network's GPU code takes the indices from an unsorted top-k whose final pass
/// gathers the selected elements in index order; [`PickOrder::Ascending`] reproduces that.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PickOrder {
    /// Ascending coordinate index (the default).
    #[default]
    Ascending,
    /// Ascending score (ties by lower index): the order of a *sorted* top-k of smallest scores.
    Score,
}

impl PickOrder {
    /// The name used in options and vector manifests.
    pub const fn name(self) -> &'static str {
        match self {
            PickOrder::Ascending => "ascending",
            PickOrder::Score => "score",
        }
    }

    /// Parses [`PickOrder::name`].
    pub fn parse(s: &str) -> Option<Self> {
        [PickOrder::Ascending, PickOrder::Score]
            .into_iter()
            .find(|o| o.name() == s)
    }
}

/// The seed string of a nonce's input embeddings.
pub fn embedding_seed_string(block_hash: &str, public_key: &str, nonce: u64) -> String {
    format!("{block_hash}_{public_key}_nonce{nonce}")
}

/// The input embeddings `X[S×d]` in `f32`, before the cast to the model dtype.
pub fn input_embeddings(
    block_hash: &str,
    public_key: &str,
    nonce: u64,
    seq_len: usize,
    d: usize,
    rng: EmbeddingRng,
) -> Vec<f32> {
    let seed_string = embedding_seed_string(block_hash, public_key, nonce);
    let n = seq_len * d;
    match rng {
        EmbeddingRng::Single => normal(seed32(&seed_string), n),
        EmbeddingRng::Split8 => {
            let seeds = seed32x8(&seed_string);
            let segment = n.div_ceil(8);
            let mut out = vec![0.0; n];
            for (chunk, seed) in out.chunks_mut(segment.max(1)).zip(seeds) {
                normal_into(seed, chunk);
            }
            out
        }
    }
}

/// The unit reflection vector of layer `layer`: `normal(seed32("{block_hash}_layer_{i}_householder"), d)`
/// divided by its norm ([`math::normalize_unit`]).
pub fn layer_reflection(block_hash: &str, layer: usize, d: usize) -> Vec<f32> {
    let mut v = normal(
        seed32(&format!("{block_hash}_layer_{layer}_householder")),
        d,
    );
    math::normalize_unit(&mut v);
    v
}

/// The `k` coordinates a nonce keeps out of `d`: the indices of the `k` smallest scores
/// `mix(j, seed32("{block_hash}_{public_key}_nonce_{nonce}_pick_{k}"))`, ties broken by the lower
/// index, returned in `order`. `k` is clamped to `d`.
pub fn pick_indices(
    block_hash: &str,
    public_key: &str,
    nonce: u64,
    d: usize,
    k: usize,
    order: PickOrder,
) -> Vec<usize> {
    let seed = seed32(&format!("{block_hash}_{public_key}_nonce_{nonce}_pick_{k}"));
    let mut scored: Vec<(u32, usize)> = (0..d).map(|j| (mix(j as u32, seed), j)).collect();
    let k = k.min(d);
    if k < d {
        scored.select_nth_unstable(k);
    }
    scored.truncate(k);
    scored.sort_unstable(); // by (score, index)
    if order == PickOrder::Ascending {
        scored.sort_unstable_by_key(|&(_, j)| j);
    }
    scored.into_iter().map(|(_, j)| j).collect()
}

/// The Haar rotation applied to the picked coordinates: `k − 1` Householder reflections
/// `w_j = normal(seed32("{block_hash}_{public_key}_nonce_{nonce}_haar_hh_{k}_{j}"), k)` / ‖·‖ for
/// `j = 0, …, k−2`, applied in that order.
///
/// The network writes the loop as "for j in 0..k−1"; we read it as the half-open range (k − 1
/// reflections), the Householder construction of a Haar-random orthogonal matrix.
pub fn rotate(block_hash: &str, public_key: &str, nonce: u64, y: &mut [f32]) {
    let k = y.len();
    for j in 0..k.saturating_sub(1) {
        let mut w = normal(
            seed32(&format!(
                "{block_hash}_{public_key}_nonce_{nonce}_haar_hh_{k}_{j}"
            )),
            k,
        );
        math::normalize_unit(&mut w);
        math::reflect(y, &w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pick_takes_smallest_scores_in_the_chosen_order() {
        let (bh, pk, nonce, d, k) = ("blk", "pk", 7, 64, 12);
        let seed = seed32(&format!("{bh}_{pk}_nonce_{nonce}_pick_{k}"));
        let mut all: Vec<(u32, usize)> = (0..d).map(|j| (mix(j as u32, seed), j)).collect();
        all.sort();
        let by_score: Vec<usize> = all[..k].iter().map(|&(_, j)| j).collect();
        assert_eq!(
            pick_indices(bh, pk, nonce, d, k, PickOrder::Score),
            by_score
        );
        let mut ascending = by_score.clone();
        ascending.sort();
        assert_eq!(
            pick_indices(bh, pk, nonce, d, k, PickOrder::Ascending),
            ascending
        );
        assert_eq!(
            pick_indices(bh, pk, nonce, 5, 12, PickOrder::Ascending).len(),
            5
        );
    }

    #[test]
    fn split8_embeddings_use_eight_segments() {
        let (s, d) = (3, 5); // 15 values: segments of 2, the last of 1
        let x = input_embeddings("b", "p", 1, s, d, EmbeddingRng::Split8);
        let seeds = seed32x8("b_p_nonce1");
        assert_eq!(&x[0..2], &normal(seeds[0], 2)[..]);
        assert_eq!(&x[14..15], &normal(seeds[7], 1)[..]);
        let single = input_embeddings("b", "p", 1, s, d, EmbeddingRng::Single);
        assert_eq!(single, normal(seed32("b_p_nonce1"), 15));
    }

    #[test]
    fn rotation_preserves_the_norm() {
        let mut y: Vec<f32> = (0..12).map(|i| i as f32 - 5.5).collect();
        let before = math::sum_squares(&y);
        rotate("b", "p", 3, &mut y);
        assert!((math::sum_squares(&y) - before).abs() < 1e-4 * before);
        let reflection = layer_reflection("b", 0, 32);
        assert!((math::sum_squares(&reflection) - 1.0).abs() < 1e-6);
    }
}
