// SPDX-License-Identifier: GPL-2.0

//! Memory-mapped I/O with bounds-checked accessors.
//!
//! C header: [`include/asm-generic/io.h`](srctree/include/asm-generic/io.h)
//!
//! [`IoMem`] is a view of a mapped MMIO region (address and length). Every accessor checks the
//! offset against the region and the access size's natural alignment, and returns `EINVAL` for
//! an offset that is out of bounds or misaligned instead of touching memory. Owners of a mapping
//! (e.g. [`crate::pci::Bar`]) hand out `&IoMem` only while the mapping exists.

use crate::{
    bindings,
    error::{code::EINVAL, Result},
};
use core::ffi::c_void;

/// A mapped MMIO region.
///
/// # Invariants
///
/// `addr..addr + len` is a valid `__iomem` mapping for as long as the `IoMem` exists (the owner
/// that creates it guarantees this and unmaps only after it is gone).
pub struct IoMem {
    addr: usize,
    len: usize,
}

macro_rules! io_accessors {
    ($(($read:ident, $write:ident, $ty:ty, $cread:ident, $cwrite:ident)),* $(,)?) => {$(
        #[doc = concat!("Reads a `", stringify!($ty), "` at `offset`; `EINVAL` if out of bounds or misaligned.")]
        pub fn $read(&self, offset: usize) -> Result<$ty> {
            let a = self.io_addr::<$ty>(offset)?;
            // SAFETY: `io_addr` checked that `a` is inside the mapping (type invariant) and
            // naturally aligned.
            Ok(unsafe { bindings::$cread(a as *const c_void) })
        }

        #[doc = concat!("Writes a `", stringify!($ty), "` at `offset`; `EINVAL` if out of bounds or misaligned.")]
        pub fn $write(&self, value: $ty, offset: usize) -> Result {
            let a = self.io_addr::<$ty>(offset)?;
            // SAFETY: as for the read above.
            unsafe { bindings::$cwrite(value, a as *mut c_void) };
            Ok(())
        }
    )*};
}

impl IoMem {
    /// Describes an existing mapping.
    ///
    /// # Safety
    ///
    /// `addr..addr + len` must be a valid `__iomem` mapping for the whole life of the returned
    /// object and of any reference to it.
    pub unsafe fn new(addr: usize, len: usize) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self { addr, len }
    }

    /// Length of the region in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The mapped address (for C APIs that take an `__iomem` pointer).
    pub fn addr(&self) -> usize {
        self.addr
    }

    fn io_addr<U>(&self, offset: usize) -> Result<usize> {
        let size = core::mem::size_of::<U>();
        let end = offset.checked_add(size).ok_or(EINVAL)?;
        if end > self.len || offset % size != 0 {
            return Err(EINVAL);
        }
        self.addr.checked_add(offset).ok_or(EINVAL)
    }

    io_accessors!(
        (read8, write8, u8, readb, writeb),
        (read16, write16, u16, readw, writew),
        (read32, write32, u32, readl, writel),
        (read64, write64, u64, readq, writeq),
    );
}
