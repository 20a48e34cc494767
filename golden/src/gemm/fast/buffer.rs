//! A growable, zero-initialised, 64-byte-aligned buffer viewed as a slice of plain numbers.
//!
//! Kernels load whole cache lines of packed operands; aligning every buffer to 64 bytes keeps
//! those loads from straddling lines. The buffer is always fully initialised (zeroed when it
//! grows), and it is only viewed as types for which every bit pattern is a valid value, so the
//! views are sound whatever was written before.

/// One cache line; the unit of allocation.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// Number types for which every bit pattern is a valid value and whose alignment divides 64.
pub(crate) trait Plain: Copy + 'static {}
impl Plain for f32 {}
impl Plain for i32 {}
impl Plain for u8 {}
impl Plain for i8 {}
impl Plain for i16 {}

/// See the module documentation.
#[derive(Clone, Default)]
pub(crate) struct AlignedBuf {
    lines: Vec<Line>,
}

impl AlignedBuf {
    /// A zeroed buffer of at least `len` elements of `T`.
    pub(crate) fn zeroed<T: Plain>(len: usize) -> Self {
        let mut buf = AlignedBuf::default();
        buf.reserve::<T>(len);
        buf
    }

    /// Grows the buffer (zero-filling) so it holds at least `len` elements of `T`.
    pub(crate) fn reserve<T: Plain>(&mut self, len: usize) {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .expect("buffer size was validated against the address space");
        let lines = bytes.div_ceil(64);
        if self.lines.len() < lines {
            self.lines.resize(lines, Line([0; 64]));
        }
    }

    /// The first `len` elements as `T` (`len` must be within what was reserved).
    pub(crate) fn slice<T: Plain>(&self, len: usize) -> &[T] {
        assert!(len * std::mem::size_of::<T>() <= self.lines.len() * 64);
        // SAFETY: the memory is initialised (zeroed on growth, then only written through these
        // views), 64-byte aligned (a multiple of any `Plain` alignment), at least `len` elements
        // long (asserted), and every bit pattern is a valid `T` (`Plain`).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr().cast::<T>(), len) }
    }

    /// The first `len` elements as mutable `T` (`len` must be within what was reserved).
    pub(crate) fn slice_mut<T: Plain>(&mut self, len: usize) -> &mut [T] {
        assert!(len * std::mem::size_of::<T>() <= self.lines.len() * 64);
        // SAFETY: as in `slice`; the `&mut self` borrow makes the view exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr().cast::<T>(), len) }
    }

    /// Bytes held (a multiple of 64).
    #[cfg(test)]
    pub(crate) fn capacity_bytes(&self) -> usize {
        self.lines.len() * 64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_aligned_zeroed_and_grow() {
        let mut buf = AlignedBuf::zeroed::<f32>(5);
        assert_eq!(buf.capacity_bytes(), 64);
        assert!(buf.slice::<f32>(5).iter().all(|&x| x == 0.0));
        buf.slice_mut::<i32>(3)[2] = 7;
        buf.reserve::<i16>(100);
        assert_eq!(buf.capacity_bytes(), 256);
        assert_eq!(buf.slice::<i32>(3)[2], 7);
        assert_eq!(buf.slice::<u8>(1).as_ptr() as usize % 64, 0);
    }
}
