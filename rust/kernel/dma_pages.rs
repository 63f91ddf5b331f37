// SPDX-License-Identifier: GPL-2.0

//! Zeroed, physically contiguous page blocks shared with a cache-coherent DMA master that sits
//! outside any IOMMU (an IOMMU's own tables and queues).
//!
//! C header: [`include/linux/gfp.h`](srctree/include/linux/gfp.h)
//!
//! An IOMMU walks its tables with physical addresses. When the IOMMU is cache coherent (SMMUv3
//! `IDR0.COHACC`, `dma-coherent` in the device tree) the CPU's cached view is the device's view,
//! so plain pages with their physical address are what the C drivers hand to such hardware
//! (io-pgtable-arm's `__arm_lpae_alloc_pages` asserts `dma == virt_to_phys`). Accesses are
//! 64-bit volatile loads/stores, single-copy atomic on arm64: the hitless STE/CD update
//! sequences depend on that. Users must only use this for coherent masters; ordering against
//! MMIO writes comes from `writel` (which orders earlier normal-memory stores) and [`dma_wmb`].

use crate::{alloc::Flags, bindings, error::code::*, error::Result};
use core::ptr::NonNull;

/// `dma_wmb()`: orders earlier stores to DMA memory before later ones as seen by a device.
pub fn dma_wmb() {
    // SAFETY: a barrier, no preconditions.
    unsafe { bindings::dma_wmb() }
}

/// A block of `PAGE_SIZE << order` zeroed bytes from the page allocator.
///
/// # Invariants
///
/// `page` is a block of order `order` allocated by `alloc_pages` and owned by this value (freed
/// exactly once, in `drop`); `virt` is its linear-map address and `phys` its physical address;
/// `len <= PAGE_SIZE << order`.
pub struct ZeroedPages {
    page: NonNull<bindings::page>,
    virt: NonNull<u64>,
    phys: u64,
    order: u32,
    len: usize,
}

// SAFETY: the block is owned memory with no thread affinity; concurrent `&self` access is only
// through volatile word loads/stores, which are data-race free at the hardware level on the
// architectures the kernel supports for 64-bit words (single-copy atomic), as for memory the
// device writes concurrently anyway.
unsafe impl Send for ZeroedPages {}
// SAFETY: see `Send`.
unsafe impl Sync for ZeroedPages {}

impl ZeroedPages {
    /// Allocates at least `len` zeroed bytes aligned to `align` (a power of two; the block is
    /// naturally aligned to its size, so `align` at most the rounded-up size is honoured).
    /// `gfp` decides whether the allocation may sleep (`GFP_KERNEL`) or not (`GFP_ATOMIC`).
    pub fn alloc(len: usize, align: usize, gfp: Flags) -> Result<Self> {
        if len == 0 || !align.is_power_of_two() {
            return Err(EINVAL);
        }
        let want = len.max(align).checked_next_power_of_two().ok_or(EINVAL)?;
        let page_size = bindings::PAGE_SIZE;
        let order = want.max(page_size).trailing_zeros() - page_size.trailing_zeros();
        if order > bindings::MAX_PAGE_ORDER {
            return Err(EINVAL);
        }
        // SAFETY: FFI call; `order` is within MAX_PAGE_ORDER.
        let page = unsafe { bindings::alloc_pages(gfp.as_raw() | bindings::__GFP_ZERO, order) };
        let page = NonNull::new(page).ok_or(ENOMEM)?;
        // SAFETY: `page` is a valid lowmem page (no __GFP_HIGHMEM was asked for).
        let virt = unsafe { bindings::page_address(page.as_ptr()) }.cast::<u64>();
        // SAFETY: as above.
        let phys = unsafe { bindings::page_to_phys(page.as_ptr()) };
        let Some(virt) = NonNull::new(virt) else {
            // SAFETY: allocated above with this order, not used since.
            unsafe { bindings::__free_pages(page.as_ptr(), order) };
            return Err(ENOMEM);
        };
        // INVARIANT: allocated above with `order`, `len` fits in it.
        Ok(Self {
            page,
            virt,
            phys,
            order,
            len,
        })
    }

    /// Physical (= bus, for a master outside any IOMMU) address of the first byte.
    #[inline]
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Usable length in bytes (as requested).
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the block is empty (never: `alloc` refuses zero lengths).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The block's first `struct page` (for `dma_map_page` of the block, [`crate::dma::BlockMapping`]).
    pub(crate) fn first_page(&self) -> *mut bindings::page {
        self.page.as_ptr()
    }

    #[inline]
    fn word(&self, offset: usize) -> Option<*mut u64> {
        if offset % 8 != 0 || offset.checked_add(8)? > self.len {
            return None;
        }
        // SAFETY: `offset + 8 <= len`, inside the block (type invariant).
        Some(unsafe { self.virt.as_ptr().add(offset / 8) })
    }

    /// Reads the 64-bit word at `offset` (8-aligned, inside the block); all-ones otherwise.
    #[inline]
    pub fn read_u64(&self, offset: usize) -> u64 {
        match self.word(offset) {
            // SAFETY: an aligned word inside the block, owned by `self`.
            Some(p) => u64::from_le(unsafe { core::ptr::read_volatile(p) }),
            None => u64::MAX,
        }
    }

    /// Writes the 64-bit word at `offset` (8-aligned, inside the block) as one store; ignored
    /// otherwise.
    #[inline]
    pub fn write_u64(&self, offset: usize, value: u64) {
        if let Some(p) = self.word(offset) {
            // SAFETY: an aligned word inside the block, owned by `self`.
            unsafe { core::ptr::write_volatile(p, value.to_le()) }
        }
    }
}

impl ZeroedPages {
    /// If the 64-bit word at `offset` (8-aligned, inside the block) holds `old`, replaces it
    /// by `new`, atomically (`cmpxchg` semantics: a full barrier, so stores to other memory
    /// before it, a new table's contents, are visible before `new` is); returns what it held.
    /// All-ones for an offset outside the block (nothing written).
    #[inline]
    pub fn cmpxchg_u64(&self, offset: usize, old: u64, new: u64) -> u64 {
        let Some(p) = self.word(offset) else {
            return u64::MAX;
        };
        // SAFETY: an aligned word inside the block, owned by `self`, valid for the borrow; every
        // other access to it is a single-copy-atomic 64-bit access (volatile or atomic).
        let a = unsafe { core::sync::atomic::AtomicU64::from_ptr(p) };
        let r = a.compare_exchange(
            old.to_le(),
            new.to_le(),
            core::sync::atomic::Ordering::SeqCst,
            core::sync::atomic::Ordering::SeqCst,
        );
        u64::from_le(r.unwrap_or_else(|cur| cur))
    }

    /// The `count` words from byte `offset`, if they are 8-aligned and inside the block.
    #[inline]
    fn words(&self, offset: usize, count: usize) -> Option<*mut u64> {
        let end = count.checked_mul(8)?.checked_add(offset)?;
        if offset % 8 != 0 || end > self.len {
            return None;
        }
        // SAFETY: `offset + 8 * count <= len`, inside the block (type invariant).
        Some(unsafe { self.virt.as_ptr().add(offset / 8) })
    }

    /// The index of the first non-zero word among the `count` words from byte `offset`
    /// (8-aligned, inside the block), `count` if all are zero; 0 for a range outside the block.
    #[inline]
    pub fn first_nonzero(&self, offset: usize, count: usize) -> usize {
        let Some(p) = self.words(offset, count) else {
            return 0;
        };
        for i in 0..count {
            // SAFETY: word `i` of a range checked to be inside the block, owned by `self`.
            if unsafe { core::ptr::read_volatile(p.add(i)) } != 0 {
                return i;
            }
        }
        count
    }

    /// Writes `first + i * step` (wrapping) to the `count` words from byte `offset`
    /// (8-aligned, inside the block), each as one store; nothing for a range outside the block.
    #[inline]
    pub fn write_run(&self, offset: usize, count: usize, first: u64, step: u64) {
        let Some(p) = self.words(offset, count) else {
            return;
        };
        let mut v = first;
        for i in 0..count {
            // SAFETY: as in `first_nonzero`.
            unsafe { core::ptr::write_volatile(p.add(i), v.to_le()) };
            v = v.wrapping_add(step);
        }
    }
}

impl Drop for ZeroedPages {
    fn drop(&mut self) {
        // SAFETY: allocated with this order and owned (type invariant); freed once, here.
        unsafe { bindings::__free_pages(self.page.as_ptr(), self.order) };
    }
}
