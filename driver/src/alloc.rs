//! A first-fit allocator for a device address window.
//!
//! Backends that own their IOVA space (the simulator's memory model, a VFIO container where we
//! choose the IOVAs ourselves, a serial board's SRAM) all need the same thing: carve aligned
//! blocks out of one window, give them back, and not fragment badly. First fit by address keeps
//! low addresses dense, which suits the short-lived tensor buffers of a PoC run.

use std::collections::BTreeMap;

use thiserror::Error;

/// Why an allocation or a free failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AllocError {
    /// No free block can hold the request.
    #[error(
        "no free block of {requested} bytes aligned to {align} (largest free block \
         {largest_free} bytes, {free_total} bytes free in all)"
    )]
    OutOfSpace {
        /// Bytes asked for.
        requested: u64,
        /// Alignment asked for.
        align: u64,
        /// The largest free block, before alignment.
        largest_free: u64,
        /// All free bytes together.
        free_total: u64,
    },
    /// Zero bytes were asked for; every allocation must own at least one address.
    #[error("a zero-byte allocation was asked for; ask for at least one byte")]
    ZeroSize,
    /// The alignment is not a power of two.
    #[error("alignment {align} is not a power of two (1, 2, 4, …)")]
    BadAlignment {
        /// The alignment asked for.
        align: u64,
    },
    /// `free` was given an address that is not the start of a live allocation.
    #[error("address {address:#x} is not the start of a live allocation")]
    NotAllocated {
        /// The address given.
        address: u64,
    },
}

/// First-fit allocator over the window `[base, base + size)`.
#[derive(Clone, Debug)]
pub struct AddressAllocator {
    base: u64,
    size: u64,
    /// Free blocks, start → length; never empty blocks, never two adjacent ones.
    free: BTreeMap<u64, u64>,
    /// Live allocations, start → length.
    used: BTreeMap<u64, u64>,
}

impl AddressAllocator {
    /// An allocator with the whole window free. The window is clipped so that it does not run
    /// past the end of the 64-bit address space.
    pub fn new(base: u64, size: u64) -> Self {
        let size = size.min(u64::MAX - base);
        let mut free = BTreeMap::new();
        if size > 0 {
            free.insert(base, size);
        }
        Self {
            base,
            size,
            free,
            used: BTreeMap::new(),
        }
    }

    /// First address of the window.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Size of the window in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// All free bytes together.
    pub fn free_bytes(&self) -> u64 {
        self.free.values().sum()
    }

    /// The largest free block (an allocation of this size with alignment 1 succeeds).
    pub fn largest_free(&self) -> u64 {
        self.free.values().copied().max().unwrap_or(0)
    }

    /// The length of the live allocation starting at `address`, if there is one.
    pub fn allocation_len(&self, address: u64) -> Option<u64> {
        self.used.get(&address).copied()
    }

    /// Live allocations as (start, length), by address.
    pub fn allocations(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.used.iter().map(|(&start, &len)| (start, len))
    }

    /// Allocates `len` bytes starting at a multiple of `align` (a power of two): the lowest such
    /// block that fits. Returns its first address.
    pub fn allocate(&mut self, len: u64, align: u64) -> Result<u64, AllocError> {
        if len == 0 {
            return Err(AllocError::ZeroSize);
        }
        if !align.is_power_of_two() {
            return Err(AllocError::BadAlignment { align });
        }
        let fit = self.free.iter().find_map(|(&start, &block_len)| {
            let aligned = start.checked_add(align - 1)? & !(align - 1);
            let end = aligned.checked_add(len)?;
            (end <= start + block_len).then_some((start, block_len, aligned))
        });
        let Some((start, block_len, aligned)) = fit else {
            return Err(AllocError::OutOfSpace {
                requested: len,
                align,
                largest_free: self.largest_free(),
                free_total: self.free_bytes(),
            });
        };
        self.free.remove(&start);
        if aligned > start {
            self.free.insert(start, aligned - start);
        }
        let block_end = start + block_len;
        let end = aligned + len;
        if block_end > end {
            self.free.insert(end, block_end - end);
        }
        self.used.insert(aligned, len);
        Ok(aligned)
    }

    /// Frees the allocation that starts at `address`; returns its length.
    pub fn free(&mut self, address: u64) -> Result<u64, AllocError> {
        let len = self
            .used
            .remove(&address)
            .ok_or(AllocError::NotAllocated { address })?;
        let mut start = address;
        let mut end = address + len;
        // Merge with the free block just before, if it ends where this one starts.
        if let Some((&prev_start, &prev_len)) = self.free.range(..start).next_back() {
            if prev_start + prev_len == start {
                self.free.remove(&prev_start);
                start = prev_start;
            }
        }
        // And with the one just after.
        if let Some(next_len) = self.free.remove(&end) {
            end += next_len;
        }
        self.free.insert(start, end - start);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_fit_respects_alignment_and_reuses_holes() {
        let mut a = AddressAllocator::new(0x1000, 0x1000);
        let x = a.allocate(10, 1).unwrap();
        assert_eq!(x, 0x1000);
        let y = a.allocate(16, 64).unwrap();
        assert_eq!(y, 0x1040);
        // The gap 0x100a..0x1040 is free and used by a small request.
        let z = a.allocate(8, 8).unwrap();
        assert_eq!(z, 0x1010);
        assert_eq!(a.free(x).unwrap(), 10);
        // Freed space at the start is found first again.
        assert_eq!(a.allocate(4, 4).unwrap(), 0x1000);
    }

    #[test]
    fn freeing_everything_coalesces_to_one_block() {
        let mut a = AddressAllocator::new(0, 4096);
        let blocks: Vec<u64> = (0..16).map(|_| a.allocate(256, 256).unwrap()).collect();
        assert!(a.allocate(1, 1).is_err());
        for &b in blocks
            .iter()
            .rev()
            .step_by(2)
            .chain(blocks.iter().step_by(2))
        {
            a.free(b).unwrap();
        }
        assert_eq!(a.largest_free(), 4096);
        assert_eq!(a.free.len(), 1);
    }

    #[test]
    fn errors_say_what_went_wrong() {
        let mut a = AddressAllocator::new(0, 100);
        assert_eq!(a.allocate(0, 1), Err(AllocError::ZeroSize));
        assert_eq!(a.allocate(1, 3), Err(AllocError::BadAlignment { align: 3 }));
        assert_eq!(
            a.allocate(101, 1),
            Err(AllocError::OutOfSpace {
                requested: 101,
                align: 1,
                largest_free: 100,
                free_total: 100
            })
        );
        assert_eq!(a.free(5), Err(AllocError::NotAllocated { address: 5 }));
        let x = a.allocate(10, 1).unwrap();
        a.free(x).unwrap();
        assert_eq!(a.free(x), Err(AllocError::NotAllocated { address: x }));
    }

    #[test]
    fn windows_at_the_top_of_the_address_space_do_not_overflow() {
        let mut a = AddressAllocator::new(u64::MAX - 64, 1 << 20);
        assert_eq!(a.size(), 64);
        let x = a.allocate(32, 32).unwrap();
        assert_eq!(x % 32, 0);
        assert!(x >= u64::MAX - 64);
        assert!(a.allocate(64, 1).is_err());
        assert!(a.allocate(1, 1 << 63).is_err());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Alloc { len: u64, align_log2: u32 },
        Free { pick: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u64..600, 0u32..9).prop_map(|(len, align_log2)| Op::Alloc { len, align_log2 }),
            any::<usize>().prop_map(|pick| Op::Free { pick }),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold_under_random_use(base in 0u64..5000, ops in prop::collection::vec(op(), 1..200)) {
            let size = 8192;
            let mut a = AddressAllocator::new(base, size);
            let mut live: Vec<(u64, u64)> = Vec::new();
            for op in ops {
                match op {
                    Op::Alloc { len, align_log2 } => {
                        let align = 1u64 << align_log2;
                        match a.allocate(len, align) {
                            Ok(x) => {
                                prop_assert_eq!(x % align, 0);
                                prop_assert!(x >= base && x + len <= base + size);
                                for &(s, l) in &live {
                                    prop_assert!(x + len <= s || s + l <= x, "overlap");
                                }
                                live.push((x, len));
                            }
                            Err(AllocError::OutOfSpace { .. }) => {
                                // First fit must not have missed a block that fits.
                                for (&s, &l) in &a.free {
                                    let aligned = (s + align - 1) & !(align - 1);
                                    prop_assert!(aligned + len > s + l);
                                }
                            }
                            Err(e) => prop_assert!(false, "unexpected error {e}"),
                        }
                    }
                    Op::Free { pick } => {
                        if !live.is_empty() {
                            let (x, len) = live.swap_remove(pick % live.len());
                            prop_assert_eq!(a.free(x), Ok(len));
                        }
                    }
                }
                let used: u64 = live.iter().map(|&(_, l)| l).sum();
                prop_assert_eq!(used + a.free_bytes(), size);
                // Free blocks are sorted, disjoint from each other and never adjacent.
                let mut last_end = None;
                for (&s, &l) in &a.free {
                    prop_assert!(l > 0);
                    if let Some(e) = last_end {
                        prop_assert!(s > e, "adjacent or overlapping free blocks");
                    }
                    last_end = Some(s + l);
                }
            }
        }
    }
}
