//! The network's nonce sequence: which nonces one ML node computes during a generation stage.
//!
//! `nonce_x = node_id + group_id·node_count + x·(n_groups·node_count)` for x = 0, 1, 2, …
//! Nodes of one participant (and groups of nodes) thereby interleave without overlap. The
//! arithmetic is checked: a sequence whose next nonce would not fit in a `u64` simply ends.

/// One node's nonce sequence: an arithmetic progression `start + x·step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NonceSequence {
    start: u64,
    step: u64,
}

/// Why a nonce sequence cannot be formed from the given indices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonceSequenceError {
    /// `node_count` or `n_groups` is zero: the sequence would have no step.
    #[error("{field} is 0; it must be at least 1")]
    Zero {
        /// The field that is zero.
        field: &'static str,
    },
    /// An index is not below its count.
    #[error("{field} = {value} must be below {count_field} = {count}")]
    IndexOutOfRange {
        /// The index field (`node_id` or `group_id`).
        field: &'static str,
        /// Its value.
        value: u64,
        /// The field it must stay below.
        count_field: &'static str,
        /// That field's value.
        count: u64,
    },
    /// The first nonce or the step does not fit in 64 bits.
    #[error("node_count × n_groups is too large: the nonce sequence does not fit in 64 bits")]
    Overflow,
}

impl NonceSequence {
    /// The sequence of node `node_id` of `node_count` in group `group_id` of `n_groups`.
    pub fn new(
        node_id: u64,
        node_count: u64,
        group_id: u64,
        n_groups: u64,
    ) -> Result<Self, NonceSequenceError> {
        if node_count == 0 {
            return Err(NonceSequenceError::Zero {
                field: "node_count",
            });
        }
        if n_groups == 0 {
            return Err(NonceSequenceError::Zero { field: "n_groups" });
        }
        if node_id >= node_count {
            return Err(NonceSequenceError::IndexOutOfRange {
                field: "node_id",
                value: node_id,
                count_field: "node_count",
                count: node_count,
            });
        }
        if group_id >= n_groups {
            return Err(NonceSequenceError::IndexOutOfRange {
                field: "group_id",
                value: group_id,
                count_field: "n_groups",
                count: n_groups,
            });
        }
        let start = group_id
            .checked_mul(node_count)
            .and_then(|g| g.checked_add(node_id))
            .ok_or(NonceSequenceError::Overflow)?;
        let step = n_groups
            .checked_mul(node_count)
            .ok_or(NonceSequenceError::Overflow)?;
        Ok(NonceSequence { start, step })
    }

    /// The x-th nonce, or `None` once the sequence has left the 64-bit range.
    pub fn nonce(&self, x: u64) -> Option<u64> {
        x.checked_mul(self.step)?.checked_add(self.start)
    }

    /// The first nonce (x = 0).
    pub fn start(&self) -> u64 {
        self.start
    }

    /// The distance between consecutive nonces.
    pub fn step(&self) -> u64 {
        self.step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_matches_the_network() {
        // node 2 of 4, group 1 of 3: 2 + 1*4 + x*12
        let seq = NonceSequence::new(2, 4, 1, 3).unwrap();
        let first: Vec<u64> = (0..4).map(|x| seq.nonce(x).unwrap()).collect();
        assert_eq!(first, [6, 18, 30, 42]);
    }

    #[test]
    fn single_node_counts_up() {
        let seq = NonceSequence::new(0, 1, 0, 1).unwrap();
        assert_eq!(seq.nonce(0), Some(0));
        assert_eq!(seq.nonce(7), Some(7));
    }

    #[test]
    fn nodes_and_groups_partition_the_nonces() {
        let (node_count, n_groups) = (3, 2);
        let mut seen = std::collections::BTreeSet::new();
        for g in 0..n_groups {
            for n in 0..node_count {
                let seq = NonceSequence::new(n, node_count, g, n_groups).unwrap();
                for x in 0..10 {
                    assert!(seen.insert(seq.nonce(x).unwrap()), "overlap");
                }
            }
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            (0..60).collect::<Vec<_>>()
        );
    }

    #[test]
    fn bad_indices_name_the_field() {
        let err = NonceSequence::new(4, 4, 0, 1).unwrap_err();
        assert!(err.to_string().contains("node_id = 4"), "{err}");
        let err = NonceSequence::new(0, 1, 0, 0).unwrap_err();
        assert!(err.to_string().contains("n_groups"), "{err}");
        assert_eq!(
            NonceSequence::new(0, u64::MAX, 0, 2),
            Err(NonceSequenceError::Overflow)
        );
    }

    #[test]
    fn overflow_ends_the_sequence() {
        let seq = NonceSequence::new(0, 1 << 62, 0, 2).unwrap();
        assert_eq!(seq.nonce(3), None);
    }
}
