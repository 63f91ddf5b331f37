// SPDX-License-Identifier: GPL-2.0

//! ID allocator (IDA).
//!
//! C header: [`include/linux/idr.h`](srctree/include/linux/idr.h)
//!
//! The kernel's plain ID allocator: hands out the lowest free integer in a range, with its own
//! internal lock. Linux 6.12's `iommu_alloc_global_pasid()` is an IDA; the project's benchmarks
//! measure the PASID allocator against it.

use crate::{alloc::Flags, bindings, error::Result, init::PinInit, pin_init, types::Opaque};
use core::ops::RangeInclusive;
use macros::{pin_data, pinned_drop};

/// An IDA.
///
/// # Invariants
///
/// `ida` is an initialised `struct ida`.
#[pin_data(PinnedDrop)]
pub struct Ida {
    #[pin]
    ida: Opaque<bindings::ida>,
}

// SAFETY: the IDA serialises all access with its internal lock.
unsafe impl Send for Ida {}
// SAFETY: as above.
unsafe impl Sync for Ida {}

impl Ida {
    /// An empty IDA.
    pub fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            // SAFETY: `ida_init` initialises the whole structure.
            ida <- Opaque::ffi_init(|ida| unsafe { bindings::ida_init(ida) }),
        })
    }

    /// Allocates the lowest free ID in `range` (`ENOSPC` when none is free).
    pub fn alloc(&self, range: RangeInclusive<u32>, gfp: Flags) -> Result<u32> {
        let max = (*range.end()).min(i32::MAX as u32);
        // SAFETY: the IDA is initialised (type invariant); the C function validates the range.
        let id = unsafe {
            bindings::ida_alloc_range(self.ida.get(), *range.start(), max, gfp.as_raw())
        };
        crate::error::to_result(id)?;
        Ok(id as u32)
    }

    /// Frees an ID allocated from this IDA.
    pub fn free(&self, id: u32) {
        // SAFETY: the IDA is initialised; `ida_free` WARNs (does not corrupt) on a free ID.
        unsafe { bindings::ida_free(self.ida.get(), id) };
    }
}

#[pinned_drop]
impl PinnedDrop for Ida {
    fn drop(self: core::pin::Pin<&mut Self>) {
        // SAFETY: the IDA is initialised and no longer used.
        unsafe { bindings::ida_destroy(self.ida.get()) };
    }
}
